"""Issue 5 (training part): buffered metric logging, progress, checkpoints that restore exactly, best, resume."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import numpy as np
import psycopg
import pytest

from arc_halo import training
from arc_halo.errors import IntegrityError, InvalidInputError, NotFoundError
from rows import insert_model


@pytest.fixture
def session(db):
    model_id = insert_model(db, "trainee")
    return model_id, training.start_session(db, model_id, "run-1", total_steps=100, hyperparameters={"lr": 1e-3})


def test_logger_writes_every_value_and_keeps_latest_current(db, session) -> None:
    _, session_id = session
    with training.MetricLogger(db, session_id, buffer_rows=700) as logger:
        for step in range(1000):
            logger.log_many({"loss": 10.0 - step / 100, "learning_rate": 1e-3, "accuracy": step / 1000}, step=step)
    counts = dict(db.execute("select metric_name, count(*) from training_metrics where training_session_id = %s"
                             " group by 1", (session_id,)))
    assert counts == {"loss": 1000, "learning_rate": 1000, "accuracy": 1000}
    latest = dict(db.execute("select metric_name, step from training_metrics_latest where training_session_id = %s",
                             (session_id,)))
    assert latest == {"loss": 999, "learning_rate": 999, "accuracy": 999}
    assert db.execute("select value from training_metrics_latest where training_session_id = %s and metric_name = 'loss'",
                      (session_id,)).fetchone()[0] == pytest.approx(10.0 - 999 / 100)


def test_progress_shows_in_the_seed_view(db, session) -> None:
    _, session_id = session
    training.update_progress(db, session_id, step=25, epoch=0)
    assert db.execute("select percent_complete from v_training_progress where training_session_id = %s",
                      (session_id,)).fetchone()[0] == 25


@pytest.mark.parametrize(("optimizer", "states"), [("adamw", ("exp_avg", "exp_avg_sq")), ("sgd", ("momentum_buffer",))])
def test_checkpoint_restores_weights_and_optimizer_state_exactly(db, session, optimizer, states) -> None:
    model_id, session_id = session
    rng = np.random.default_rng(5)
    weights = {"w": rng.standard_normal((8, 4)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float16)}
    state = {name: {s: rng.standard_normal(array.shape).astype(array.dtype) for s in states} for name, array in weights.items()}
    checkpoint_id = training.save_checkpoint(db, model_id, session_id, step=10, weights=weights, optimizer_state=state,
                                             optimizer_type=optimizer, optimizer_hyperparameters={"lr": 0.1},
                                             metrics={"loss": 1.5})
    restored = training.load_checkpoint(db, checkpoint_id)
    assert restored.step == 10 and restored.optimizer_type == optimizer
    assert restored.optimizer_hyperparameters == {"lr": 0.1}
    for name, array in weights.items():
        assert restored.weights[name].tobytes() == array.tobytes() and restored.weights[name].dtype == array.dtype
        for state_name in states:
            assert restored.optimizer_state[name][state_name].tobytes() == state[name][state_name].tobytes()


def test_best_checkpoint_is_unique_and_resume_returns_latest(db, session) -> None:
    model_id, session_id = session
    weights = {"w": np.ones(3, dtype=np.float32)}
    first = training.save_checkpoint(db, model_id, session_id, step=1, weights=weights, is_best=True)
    second = training.save_checkpoint(db, model_id, session_id, step=2, weights=weights, is_best=True)
    best = [row[0] for row in db.execute("select checkpoint_id from model_checkpoints where training_session_id = %s"
                                         " and is_best", (session_id,))]
    assert best == [second]
    training.mark_best(db, first)
    assert [row[0] for row in db.execute("select checkpoint_id from model_checkpoints where training_session_id = %s"
                                         " and is_best", (session_id,))] == [first]
    training.finish_session(db, session_id, "paused")
    resumed = training.resume(db, session_id)
    assert resumed.checkpoint_id == second
    assert db.execute("select status from training_sessions where training_session_id = %s",
                      (session_id,)).fetchone()[0] == "running"


def test_failed_checkpoint_leaves_nothing(db, session) -> None:
    model_id, session_id = session
    before = db.execute("select count(*) from tensor_metadata").fetchone()[0]
    with pytest.raises(ValueError, match="needs optimizer_type"):
        training.save_checkpoint(db, model_id, session_id, step=3, weights={"w": np.ones(2)},
                                 optimizer_state={"w": {"exp_avg": np.ones(2)}})
    with pytest.raises(InvalidInputError, match="step must be between 0"):
        training.save_checkpoint(db, model_id, session_id, step=-1, weights={"w": np.ones(2)})
    assert db.execute("select count(*) from tensor_metadata").fetchone()[0] == before


def test_metrics_of_an_unknown_session_are_refused_whole(db, session) -> None:
    """The session check runs once per statement; its error names the constraint, as a foreign key's would."""
    _, session_id = session
    with training.MetricLogger(db, session_id) as logger:
        logger.log("loss", 1.0, step=1)
    unknown = "00000000-0000-0000-0000-00000000dead"
    with pytest.raises(NotFoundError, match=f"no training session {unknown}"):
        training.MetricLogger(db, unknown)
    with pytest.raises(NotFoundError, match=f"no training_sessions row with .*{unknown}") as refused:
        with db.transaction():
            training.copy_metric_rows(db, [(uuid.UUID(unknown).bytes, "loss", 2, None, 2.0, datetime.now(timezone.utc))])
    cause = refused.value.__cause__  # the database's own error, kept as the cause
    assert cause.diag.constraint_name == "training_metrics_training_session_id_fkey"
    assert f"Key (tenant_id, training_session_id)=(default, {unknown}) is not present" in cause.diag.message_detail
    with pytest.raises(psycopg.errors.ForeignKeyViolation, match="training_metrics_training_session_id_fkey"):
        with db.transaction():  # a mixed batch is refused whole: the known session's row is not kept either
            db.execute("insert into training_metrics (training_session_id, metric_name, step, value)"
                       " values (%s, 'loss', 3, 1.0), (%s, 'loss', 3, 1.0)", (session_id, unknown))
    assert db.execute("select count(*) from training_metrics").fetchone()[0] == 1
    assert db.execute("select step from training_metrics_latest").fetchall() == [(1,)]


def test_deleting_a_session_deletes_its_metrics(db, session) -> None:
    model_id, session_id = session
    other = training.start_session(db, model_id, "run-2")
    for run in (session_id, other):
        with training.MetricLogger(db, run) as logger:
            logger.log_many({"loss": 1.0, "accuracy": 0.5}, step=1)
    db.execute("delete from training_sessions where training_session_id = %s", (session_id,))
    assert db.execute("select training_session_id, count(*) from training_metrics group by 1").fetchall() == [(other, 2)]
    assert db.execute("select count(*) from training_metrics_latest").fetchone()[0] == 2


def test_logger_encoding_round_trips_every_field(db, session) -> None:
    """Through the logger's binary COPY (the session id sent as raw bytes): names (non-ASCII too), steps,
    epochs with NULLs, values (NaN and extremes) and timestamps come back exactly; a bad name is refused
    by the table's check."""
    from datetime import datetime, timedelta, timezone

    _, session_id = session
    at = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=timezone.utc)
    with training.MetricLogger(db, session_id) as logger:
        logger.log("loss", 2.5, step=2**40, epoch=3, at=at)
        logger.log("grad_norm", float("nan"), step=0, at=at + timedelta(microseconds=1))
        logger.log("perplexité", -1.7976931348623157e308, step=7, epoch=0, at=at.astimezone(timezone(timedelta(hours=-5))))
        logger.log("loss", 2.25, step=2**40 + 1, epoch=None)
    rows = db.execute("""select metric_name, step, epoch, value, recorded_at from training_metrics
                         where training_session_id = %s order by metric_name, step""", (session_id,)).fetchall()
    assert rows[0][:4] == ("grad_norm", 0, None, rows[0][3]) and rows[0][3] != rows[0][3]  # NaN
    assert rows[0][4] == at + timedelta(microseconds=1)
    assert rows[1] == ("loss", 2**40, 3, 2.5, at)
    assert rows[2][:4] == ("loss", 2**40 + 1, None, 2.25)
    assert abs(rows[2][4] - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert rows[3] == ("perplexité", 7, 0, -1.7976931348623157e308, at)
    with pytest.raises(InvalidInputError, match="metric name must be a string of 1 to 250 characters"):
        training.MetricLogger(db, session_id).log("", 1.0, step=1)
    with pytest.raises(IntegrityError, match="training_metrics_metric_name_check"), db.transaction():
        training.copy_metric_rows(db, [(uuid.UUID(str(session_id)).bytes, "", 1, None, 1.0, at)])

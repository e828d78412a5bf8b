"""Training curves as a picture: loss and learning rate against step for one session."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg

from arc_halo import validation
from arc_halo.errors import InvalidInputError, NotFoundError, public_call
from arc_halo.tenancy import CURRENT_TENANT


@public_call
def training_curves(conn: psycopg.Connection, session: str, output: Path) -> Path:
    """Render `session` (name or id) to a PNG (or SVG/PDF, by the output's suffix)."""
    output = validation.path("output", output)
    if not isinstance(session, (str, uuid.UUID)):
        raise InvalidInputError(f"session is a session name or id, got {type(session).__name__}")
    session = str(session)
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    row = conn.execute(
        "select training_session_id, session_name from training_sessions"
        f" where (session_name = %s or training_session_id::text = %s) and tenant_id = {CURRENT_TENANT}", (session, session),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no training session named or with id {session!r}: see `select session_name from training_sessions`")
    session_id, name = row
    series: dict[str, tuple[list[int], list[float]]] = {"loss": ([], []), "learning_rate": ([], [])}
    for metric, step, value in conn.execute(
        f"select metric_name, step, value from training_metrics where training_session_id = %s and tenant_id = {CURRENT_TENANT}"
        " and metric_name in ('loss', 'learning_rate') order by metric_name, step", (session_id,),
    ):
        series[metric][0].append(step)
        series[metric][1].append(value)
    if not series["loss"][0]:
        raise NotFoundError(f"session {name!r} has no logged loss yet")
    figure, loss_axis = plt.subplots(figsize=(9, 4.5), dpi=110)
    loss_axis.plot(*series["loss"], color="tab:blue", label="loss")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("loss", color="tab:blue")
    if series["learning_rate"][0]:
        rate_axis = loss_axis.twinx()
        rate_axis.plot(*series["learning_rate"], color="tab:orange", label="learning rate")
        rate_axis.set_ylabel("learning rate", color="tab:orange")
    loss_axis.set_title(f"{name}: loss and learning rate")
    loss_axis.grid(alpha=0.3)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)
    return output

"""Issue 18 §7: property-based tests (Hypothesis) of what the library promises for every input, not only
for the inputs someone thought of:

- MetricLogger: a value `log` accepts is stored exactly once, the float bit for bit (NaN payloads and
  -0.0 too); a value it refuses raises InvalidInputError at `log` and nothing of it is written;
  `inference.log_metrics` holds the same rule for a whole dict of names and values;
- tensors: an array `put` accepts (any dtype, shape, 0-d, empty, NaN payloads, non-contiguous, either
  byte order) reads back identical, byte for byte; one it refuses raises an ArcHaloError subclass;
- model names: a name the model import accepts finds the model again; a refused one raises
  InvalidInputError.

All of it as the application's login with row-level security on, in one database for the module. The
number of examples is bounded so that the module stays fast (see PROPERTY_SETTINGS).
"""

from __future__ import annotations

import json
import math
import struct
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from psycopg.conninfo import make_conninfo
from safetensors.numpy import save_file

from arc_halo import db, hf, inference, tensors, training
from arc_halo.dtypes import NUMPY_DTYPES
from arc_halo.errors import ArcHaloError, InvalidInputError
from rows import insert_model

# deadline=None: a database round trip's time is not the property; derandomize: CI runs the same
# examples each time (a failure is reproducible), and new code meets the same search.
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                             suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def app_url(test_server, rls_template_database, app_login):
    """One database for the module, built with row-level security on, reached as the application's login."""
    name = test_server.create_database(template=rls_template_database)
    try:
        yield make_conninfo(test_server.url(name), user=app_login)
    finally:
        test_server.drop_database(name)


@pytest.fixture(scope="module")
def conn(app_url):
    with db.connect(app_url, tenant="properties") as connection:
        yield connection


# --- MetricLogger ----------------------------------------------------------------------------------

def _nan_with_payload(bits: int, negative: bool, quiet: bool) -> float:
    """A NaN with the given mantissa bits (signalling when not quiet): what float() of odd data gives."""
    mantissa = (bits & ((1 << 51) - 1)) | ((1 << 51) if quiet else 0) or 1
    return struct.unpack("<d", struct.pack("<Q", (negative << 63) | (0x7FF << 52) | mantissa))[0]


ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=8)  # surrogates, NUL, controls included
METRIC_NAMES = st.one_of(
    st.sampled_from(["loss", "val/acc", "lr ✓", "naïve", "x" * 250, "x" * 251, "", "a\x00b", "\ud800", " ", "\t"]),
    ANY_TEXT, st.text(min_size=245, max_size=255), st.integers(), st.none(), st.binary(max_size=4),
)
METRIC_VALUES = st.one_of(
    st.floats(),  # every double: NaN, infinities, -0.0, subnormals
    st.builds(_nan_with_payload, st.integers(0, 2**52), st.booleans(), st.booleans()),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(width=32).map(np.float32), st.floats(width=16).map(np.float16), st.integers(-2**63, 2**63 - 1).map(np.int64),
    st.fractions(), st.decimals(), st.just(Fraction(10**400, 3)), st.just(Decimal("1e400")), st.just(Decimal("sNaN")),
    st.floats().map(np.array), st.booleans(), st.none(), st.text(max_size=3), st.complex_numbers(),
    st.just(np.complex64(1 + 2j)), st.lists(st.floats(), max_size=2).map(np.array),
)
STEPS = st.one_of(st.integers(-2, 2**63 + 1), st.sampled_from([0, 2**63 - 1, 2**63, 1.0, True]),
                  st.integers(0, 100).map(np.int32))
EPOCHS = st.one_of(st.none(), st.integers(-1, 2**31), st.just(False))
OFFSETS = st.integers(-14 * 60 + 1, 14 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
TIMES = st.one_of(st.none(), st.datetimes(timezones=st.one_of(st.just(timezone.utc), OFFSETS)), st.datetimes())
CALLS = st.lists(st.tuples(METRIC_NAMES, METRIC_VALUES, STEPS, EPOCHS, TIMES), min_size=1, max_size=12)


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


@PROPERTY_SETTINGS
@given(calls=CALLS, buffer_rows=st.integers(1, 8))
def test_what_log_accepts_is_stored_exactly_once_and_what_it_refuses_raises_there(conn, calls, buffer_rows) -> None:
    session_id = training.start_session(conn, insert_model(conn, f"metrics-{uuid.uuid4()}"), "property")
    conn.commit()
    expected: Counter = Counter()
    logger = training.MetricLogger(conn, session_id, buffer_rows=buffer_rows)
    for name, value, step, epoch, at in calls:
        try:
            logger.log(name, value, step, epoch=epoch, at=at)
        except InvalidInputError:
            continue
        recorded = at  # None: the logger's clock; compared below as "any time"
        expected[(name, int(step), epoch, _bits(float(value)), recorded)] += 1
    logger.close()
    conn.commit()
    with conn.cursor(binary=True) as cursor:
        rows = cursor.execute("select metric_name, step, epoch, value, recorded_at from training_metrics"
                              " where training_session_id = %s", (session_id,)).fetchall()
    stored = Counter()
    for name, step, epoch, value, recorded_at in rows:
        stored[(name, step, epoch, _bits(value), recorded_at)] += 1
    assert sum(stored.values()) == sum(expected.values()) and logger.pending == 0 and not logger.rejected
    for (name, step, epoch, bits, at), count in expected.items():
        if at is not None:  # bit for bit, the time to the microsecond, as often as logged
            assert stored[(name, step, epoch, bits, at)] == count, (name, step, bits, at)
    times_of_own_clock = Counter(key[:4] for key in expected if key[4] is None)
    for key, count in times_of_own_clock.items():
        assert sum(n for stored_key, n in stored.items() if stored_key[:4] == key) >= count


@PROPERTY_SETTINGS
@given(values=st.dictionaries(METRIC_NAMES.filter(lambda name: isinstance(name, (str, int, bytes))), METRIC_VALUES,
                              min_size=1, max_size=5),
       step=STEPS)
def test_log_many_takes_a_step_whole_or_refuses_it_whole(conn, values, step) -> None:
    session_id = training.start_session(conn, insert_model(conn, f"metrics-{uuid.uuid4()}"), "property")
    conn.commit()
    with training.MetricLogger(conn, session_id) as logger:
        try:
            logger.log_many(values, step)
            accepted = {(name, _bits(float(value))) for name, value in values.items()}
        except InvalidInputError:
            accepted = set()
    conn.commit()
    with conn.cursor(binary=True) as cursor:
        rows = cursor.execute("select metric_name, value from training_metrics where training_session_id = %s",
                              (session_id,)).fetchall()
    assert sorted((name, _bits(value)) for name, value in rows) == sorted(accepted)


@PROPERTY_SETTINGS
@given(values=st.dictionaries(METRIC_NAMES.filter(lambda name: isinstance(name, (str, int, bytes))), METRIC_VALUES,
                              min_size=1, max_size=5))
def test_inference_metrics_are_stored_whole_or_refused_whole(conn, values) -> None:
    """inference.log_metrics holds the same names and values as MetricLogger: what it takes is stored bit for bit,
    what it refuses raises InvalidInputError before a row is written."""
    session_id = inference.start_session(conn, insert_model(conn, f"inference-{uuid.uuid4()}"))
    try:
        inference.log_metrics(conn, session_id, values)
        accepted = {(name, _bits(float(value))) for name, value in values.items()}
    except InvalidInputError:
        accepted = set()
    with conn.cursor(binary=True) as cursor:
        rows = cursor.execute("select metric_name, value from inference_metrics where inference_session_id = %s",
                              (session_id,)).fetchall()
    assert sorted((name, _bits(value)) for name, value in rows) == sorted(accepted)
    conn.rollback()


# --- tensors ---------------------------------------------------------------------------------------

STORABLE = [np.dtype(dtype) for dtype in NUMPY_DTYPES.values()]
SHAPES = hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)


@st.composite
def arrays_of_any_bits(draw) -> np.ndarray:
    """An array of a storable dtype (either byte order) whose bytes are arbitrary (every NaN payload, every
    bool byte), often a non-contiguous view of a larger one."""
    dtype = draw(st.sampled_from(STORABLE))
    if dtype.itemsize > 1 and draw(st.booleans()):
        dtype = dtype.newbyteorder(">")
    shape = draw(SHAPES)
    view = draw(st.sampled_from(["whole", "strided", "transposed", "reversed"])) if math.prod(shape) else "whole"
    base_shape = (shape[0] * 2, *shape[1:]) if view == "strided" and shape else shape
    count = math.prod(base_shape)
    data = draw(st.binary(min_size=count * dtype.itemsize, max_size=count * dtype.itemsize))
    array = np.frombuffer(data, dtype=dtype).reshape(base_shape) if count else np.zeros(base_shape, dtype)
    if view == "strided" and shape:
        array = array[::2]
    elif view == "transposed":
        array = array.T
    elif view == "reversed" and shape:
        array = array[::-1]
    return array


NOT_STORABLE = st.one_of(
    st.builds(np.zeros, SHAPES, st.sampled_from([np.dtype("O"), np.dtype("U3"), np.dtype("S2"), np.dtype("M8[s]"),
                                                  np.dtype("m8[s]"), np.dtype("V4"), np.dtype("clongdouble"),
                                                  np.dtype([("a", "i4")])])),
    st.none(), st.text(max_size=3), st.just([[1.0], [1.0, 2.0]]), st.just({"a": 1}),
)


@PROPERTY_SETTINGS
@given(array=arrays_of_any_bits(), chunk_bytes=st.sampled_from([1, 3, 7, 64, tensors.DEFAULT_CHUNK_BYTES]))
def test_any_array_put_accepts_reads_back_identical_byte_for_byte(conn, array, chunk_bytes) -> None:
    with conn.transaction():
        tensor_id = tensors.put(conn, array, "property", chunk_bytes=chunk_bytes)
    back = tensors.get(conn, tensor_id)
    native = array.dtype.newbyteorder("=")
    assert back.dtype == native and back.shape == array.shape
    assert back.tobytes() == np.ascontiguousarray(array, dtype=native).tobytes()


@PROPERTY_SETTINGS
@given(value=NOT_STORABLE)
def test_what_put_refuses_raises_an_arc_halo_error_and_writes_nothing(conn, value) -> None:
    before = conn.execute("select count(*) from tensor_metadata").fetchone()[0]
    with pytest.raises(ArcHaloError):
        with conn.transaction():
            tensors.put(conn, value, "refused")
    assert conn.execute("select count(*) from tensor_metadata").fetchone()[0] == before


# --- model names -----------------------------------------------------------------------------------

TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 16, "vocab_size": 4,
    "max_position_embeddings": 8, "rms_norm_eps": 1e-6, "hidden_act": "silu",
}
MODEL_NAMES = st.one_of(
    ANY_TEXT, st.text(min_size=195, max_size=205), st.uuids().map(str),
    st.sampled_from(["gpt-fusion-1", "a/b", "名前", " padded ", "x" * 200, "x" * 201, "", " ", "\u3000", "a\x00", "\ud800x",
                     "line\nbreak", "tab\tname", "\x7f"]),
)


@pytest.fixture(scope="module")
def model_directory(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-model")
    save_file({"model.norm.weight": np.arange(8, dtype=np.float32)}, str(directory / "model.safetensors"))
    return directory


@PROPERTY_SETTINGS
@given(name=MODEL_NAMES)
def test_a_model_name_import_accepts_finds_the_model_again(conn, model_directory, name) -> None:
    # A different config each time: the import returns a model with the same content as is.
    (model_directory / "config.json").write_text(json.dumps({**TINY_CONFIG, "arc_halo_example": str(uuid.uuid4())}))
    before = conn.execute("select count(*) from models").fetchone()[0]
    conn.commit()
    try:
        imported = hf.import_model(conn, model_directory, name=name, workers=0)
    except InvalidInputError:  # refused (or the name is taken by other weights): nothing written
        conn.rollback()
        assert conn.execute("select count(*) from models").fetchone()[0] == before
        return
    conn.commit()
    assert imported.created and imported.model_name == name
    assert np.array_equal(tensors.get_parameter(conn, name, "model.norm.weight"), np.arange(8, dtype=np.float32))
    assert conn.execute("select model_id from models where model_name = %s", (name,)).fetchall() == [(imported.model_id,)]


"""Values are checked where they enter: a bad one raises at the call, naming key and value."""

import math

import numpy as np
import pytest

import nbtrack
from nbtrack.entities import Metric, Param
from nbtrack.exceptions import InvalidValueError


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"step": 2**63}, r"step of metric 'm' is 9223372036854775808, outside"),
    ({"step": -(2**63) - 1}, r"step of metric 'm' .* outside"),
    ({"step": np.uint64(2**64 - 1)}, r"step of metric 'm' is 18446744073709551615"),
    ({"step": 1.5}, r"step of metric 'm' must be a whole number, got float 1.5"),
    ({"step": np.float64(2.25)}, r"must be a whole number"),
    ({"step": "3"}, r"must be a whole number, got str"),
    ({"timestamp": 2**63}, r"timestamp of metric 'm' .* outside"),
    ({"timestamp": 1.7e12 + 0.5}, r"timestamp of metric 'm' must be a whole number"),
])
def test_bad_steps_and_timestamps_raise_at_the_call(kwargs, message):
    with nbtrack.start_run() as run, pytest.raises(InvalidValueError, match=message):
        nbtrack.log_metric("m", 1.0, **kwargs)
    assert nbtrack.get_run(run.info.run_id).data.metrics == {}


def test_whole_numbers_of_any_kind_are_taken():
    with nbtrack.start_run() as run:
        nbtrack.log_metric("m", 1.0, step=np.int64(3))
        nbtrack.log_metric("m", 2.0, step=4.0)  # a float with no fraction is a whole number
        nbtrack.log_metric("m", 3.0, step=2**63 - 1, timestamp=-(2**63))
    steps = [m.step for m in nbtrack.Client().get_metric_history(run.info.run_id, "m")]
    assert steps == [3, 4, 2**63 - 1]


def test_strings_that_are_not_valid_unicode_raise_at_the_call():
    name = b"caf\xe9.csv".decode("utf-8", "surrogateescape")  # as os.fsdecode gives
    client = nbtrack.Client()
    with nbtrack.start_run() as run:
        with pytest.raises(InvalidValueError, match=r"value of param 'file'.*not valid Unicode"):
            nbtrack.log_param("file", name)
        with pytest.raises(InvalidValueError, match="value of tag 'source'"):
            nbtrack.set_tag("source", name)
        with pytest.raises(InvalidValueError, match="value of param 'p'"):
            client.log_batch(run.info.run_id, params=[Param("p", name)])
        with pytest.raises(InvalidValueError, match="run name"):
            client.update_run(run.info.run_id, name=name)
        nbtrack.log_param("ok", "still logging")  # nothing was poisoned
    with pytest.raises(InvalidValueError, match="run name"):
        nbtrack.start_run(run_name=name)
    assert nbtrack.get_run(run.info.run_id).data.params == {"ok": "still logging"}


def test_a_key_ending_in_a_newline_is_refused():
    with nbtrack.start_run(), pytest.raises(InvalidValueError, match=r"Invalid metric key 'k\\n'"):
        nbtrack.log_metric("k\n", 1.0)


def test_log_batch_checks_steps_too():
    client = nbtrack.Client()
    run_id = client.create_run("0").info.run_id
    with pytest.raises(InvalidValueError, match="step of metric 'm'"):
        client.log_batch(run_id, metrics=[Metric("m", 1.0, 0, 0.5)])


def test_negative_zero_keeps_its_sign_everywhere():
    with nbtrack.start_run() as run:
        nbtrack.log_metric("z", -0.0)
    run_id = run.info.run_id
    latest = nbtrack.get_run(run_id).data.metrics["z"]
    frame = nbtrack.search_runs()
    history = nbtrack.Client().get_metric_history(run_id, "z")
    assert math.copysign(1.0, latest) == -1.0
    assert math.copysign(1.0, frame["metrics.z"][0]) == -1.0
    assert math.copysign(1.0, history[0].value) == -1.0


@pytest.mark.parametrize("key", [["a"], {"a": 1}, {"a"}])
def test_an_unhashable_key_is_refused_by_name(key):
    with nbtrack.start_run(), pytest.raises(InvalidValueError, match="key must be a string"):
        nbtrack.log_metric(key, 1.0)

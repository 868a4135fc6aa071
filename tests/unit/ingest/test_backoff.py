import random

import pytest

from metrosight.ingest.backoff import Backoff, BackoffError


def test_delays_grow_exponentially_up_to_the_ceiling():
    b = Backoff(initial=0.5, maximum=8.0, factor=2.0, jitter=0.0)
    assert [b.delay(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert b.delay(10_000) == 8.0  # no overflow


def test_jitter_shortens_within_bounds_and_spreads_cameras():
    b = Backoff(initial=1.0, maximum=60.0, factor=2.0, jitter=0.5, rng=random.Random(7))
    delays = [b.delay(3) for _ in range(500)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert max(delays) - min(delays) > 1.5  # cameras retrying together spread over the window
    assert len({round(d, 6) for d in delays}) > 400


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [
        ({"initial": 0}, "initial delay must be > 0"),
        ({"initial": 2, "maximum": 1}, "maximum"),
        ({"factor": 0.5}, "factor must be >= 1"),
        ({"jitter": 1.5}, "jitter must be in"),
    ],
)
def test_bad_parameters_are_named(kwargs, msg):
    with pytest.raises(BackoffError, match=msg):
        Backoff(**kwargs)

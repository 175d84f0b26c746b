"""The health state machine, edge by edge (federation.md "Cluster health")."""

import pytest

from fed_dns.federation import health
from fed_dns.federation.health import ProbeState, Thresholds
from fed_dns.model import Health

U, R, X = Health.UNKNOWN, Health.READY, Health.UNREACHABLE
DEFAULT = Thresholds()


@pytest.mark.parametrize(
    ("start", "ok", "expected"),
    [
        pytest.param(ProbeState(U), True, ProbeState(U, successes=1), id="unknown+1-counts"),
        pytest.param(ProbeState(U, successes=1), True, ProbeState(R), id="unknown+2-ready"),
        pytest.param(ProbeState(U), False, ProbeState(U, failures=1), id="unknown-1-counts"),
        pytest.param(ProbeState(U, failures=2), False, ProbeState(X), id="unknown-3-unreachable"),
        pytest.param(ProbeState(U, failures=2), True, ProbeState(U, successes=1), id="unknown-success-resets-failures"),
        pytest.param(ProbeState(U, successes=1), False, ProbeState(U, failures=1), id="unknown-failure-resets-successes"),
        pytest.param(ProbeState(R), True, ProbeState(R), id="ready+stays-zero"),
        pytest.param(ProbeState(R), False, ProbeState(R, failures=1), id="ready-1"),
        pytest.param(ProbeState(R, failures=1), False, ProbeState(R, failures=2), id="ready-2"),
        pytest.param(ProbeState(R, failures=2), False, ProbeState(X), id="ready-3-unreachable"),
        pytest.param(ProbeState(R, failures=2), True, ProbeState(R), id="ready-success-resets"),
        pytest.param(ProbeState(X), False, ProbeState(X), id="unreachable-stays-zero"),
        pytest.param(ProbeState(X), True, ProbeState(X, successes=1), id="unreachable+1"),
        pytest.param(ProbeState(X, successes=1), True, ProbeState(R), id="unreachable+2-ready"),
        pytest.param(ProbeState(X, successes=1), False, ProbeState(X), id="unreachable-failure-resets"),
    ],
)
def test_every_edge_with_default_thresholds(start, ok, expected):
    assert health.transition(state=start, ok=ok, thresholds=DEFAULT) == expected


@pytest.mark.parametrize(
    ("results", "thresholds", "expected"),
    [
        pytest.param("", DEFAULT, U, id="nothing-yet"),
        pytest.param("++", DEFAULT, R, id="start-healthy"),
        pytest.param("---", DEFAULT, X, id="dead-at-start"),
        pytest.param("++--", DEFAULT, R, id="two-failures-not-enough"),
        pytest.param("++---", DEFAULT, X, id="three-failures"),
        pytest.param("++--+--", DEFAULT, R, id="success-breaks-failure-streak"),
        pytest.param("++-+-+-+-+-+", DEFAULT, R, id="flapping-ready-stays-ready"),
        pytest.param("---+-+-+-+-+", DEFAULT, X, id="flapping-unreachable-stays-unreachable"),
        pytest.param("+-+-+-+-", DEFAULT, U, id="flapping-unknown-stays-unknown"),
        pytest.param("++---++", DEFAULT, R, id="recovers"),
        pytest.param("++---+-+", DEFAULT, X, id="recovery-needs-consecutive"),
        pytest.param("-", Thresholds(failure=1, success=1), X, id="threshold-1-fails-at-once"),
        pytest.param("-+", Thresholds(failure=1, success=1), R, id="threshold-1-recovers-at-once"),
        pytest.param("++++-----", Thresholds(failure=5, success=4), X, id="custom-thresholds"),
        pytest.param("++++----", Thresholds(failure=5, success=4), R, id="custom-one-short"),
    ],
)
def test_sequences(results, thresholds, expected):
    assert health.run(results=results, thresholds=thresholds).health is expected


def test_counters_stay_bounded_on_long_streaks():
    state = health.run(results="+" * 1000, thresholds=DEFAULT)
    assert state == ProbeState(R)
    state = health.run(results="-" * 1000, thresholds=DEFAULT, state=state)
    assert state == ProbeState(X)


@pytest.mark.parametrize("kwargs", [{"failure": 0}, {"success": 0}, {"failure": -1}])
def test_thresholds_below_one_are_refused(kwargs):
    with pytest.raises(ValueError):
        Thresholds(**kwargs)


def test_run_refuses_other_characters():
    with pytest.raises(ValueError):
        health.run(results="+x", thresholds=DEFAULT)

"""The health state machine of a probed thing (a member's API or a data-plane backend). Pure.

federation.md, "Cluster health"::

    unknown     --success x success_threshold--> ready
    unknown     --failure x failure_threshold--> unreachable
    ready       --failure x failure_threshold--> unreachable
    unreachable --success x success_threshold--> ready

`unknown` is the state at start. It also falls to `unreachable` after `failure_threshold`
failures (our choice; the spec names only its success edge), so a member that is already
dead when fed-dns starts is failed over instead of keeping its old records forever.

Counters hold the current streak only and only while it can still cause a transition: a
result of the other kind resets a streak, every transition resets both, and a result that
confirms the current state (a success while ready, a failure while unreachable) keeps both at
zero. So `ready` after two failures and one success is back at `failures=0`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fed_dns.model import Health


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """How many consecutive results move a state (config `health.*_threshold`)."""

    failure: int = 3
    success: int = 2

    def __post_init__(self) -> None:
        if self.failure < 1 or self.success < 1:
            raise ValueError(f"thresholds must be at least 1, got failure={self.failure} "
                             f"success={self.success}")


@dataclass(frozen=True, slots=True)
class ProbeState:
    health: Health = Health.UNKNOWN
    successes: int = 0
    failures: int = 0


def transition(*, state: ProbeState, ok: bool, thresholds: Thresholds) -> ProbeState:
    """The state after one probe result."""
    if ok:
        if state.health is Health.READY:
            return ProbeState(Health.READY)
        successes = state.successes + 1
        if successes >= thresholds.success:
            return ProbeState(Health.READY)
        return ProbeState(state.health, successes=successes)
    if state.health is Health.UNREACHABLE:
        return ProbeState(Health.UNREACHABLE)
    failures = state.failures + 1
    if failures >= thresholds.failure:
        return ProbeState(Health.UNREACHABLE)
    return ProbeState(state.health, failures=failures)


def run(*, results: str, thresholds: Thresholds, state: ProbeState = ProbeState()) -> ProbeState:
    """Fold a string of results ("+" success, "-" failure) from `state`: for tables and logs."""
    for char in results:
        if char not in "+-":
            raise ValueError(f"results are '+' and '-' only, got {char!r}")
        state = transition(state=state, ok=char == "+", thresholds=thresholds)
    return state

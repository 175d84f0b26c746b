"""The scale benchmark scaled down (issue 8): 10 members x 500 Services x 3 endpoints, a real
etcd, `fed-dns run` as a subprocess, on the harness bench/scale.py uses.

The bounds are generous (CI shares 2 cores), but each catches a return to whole-zone work per
event: at this size the old core took ~11 s to write the zone, answered churn after seconds
and wrote none of it to etcd within a minute, and a restart never wrote the next change.
The work per change is also counted (Services stepped per change), which no machine load
can make pass by accident.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.e2e import scale_phases
from tests.e2e.scale_support import ScaleRig

MEMBERS, SERVICES = 10, 500
HEALTH = {"period": "1s", "timeout": "1s", "failure_threshold": 3, "success_threshold": 2}


def status(rig: ScaleRig) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{rig.daemon.http_port}/status", timeout=5) as r:
        return json.load(r)


@pytest.mark.slow
def test_ten_members_of_500_services_start_churn_kill_and_restart(tmp_path, etcd_fresh):
    with ScaleRig(tmp=tmp_path, etcd_url=etcd_fresh.url, members=MEMBERS, services=SERVICES,
                  config={"health": HEALTH}) as rig:
        rig.start_members()
        started = scale_phases.start(rig, timeout=60)
        assert started["answered_s"] is not None and started["answered_s"] < 45, started
        assert started["all_keys_in_etcd_s"] is not None and started["all_keys_in_etcd_s"] < 60, started
        assert started["keys_in_etcd"] == rig.expected_keys == MEMBERS * SERVICES * 6

        before = status(rig)["reconcile"]
        churned = scale_phases.churn(rig, rate=100, duration=10, counter=0, timeout=60)
        after = status(rig)["reconcile"]
        assert churned["changes"] >= 900, churned
        assert churned["never_in_etcd"] == 0, churned
        assert churned["answers_misread"] == 0, churned  # the bytes read as dnspython reads them
        assert churned["event_to_answer_ms"]["p99"] < 3000, churned
        assert churned["event_to_etcd_ms"]["p99"] < 10_000, churned
        assert not churned["backlog_growing"], churned
        # Cost follows the change: each change steps its own Service (and once more when its
        # write is taken as done), never the zone's 500 x 10.
        stepped = after["services_stepped"] - before["services_stepped"]
        assert stepped <= 4 * churned["changes"] + 100, (stepped, churned["changes"])
        assert after["longest_step_seconds"] < 2.0, after

        # A member stopped: detected by its probes, withdrawn from DNS and etcd, back after.
        killed = scale_phases.kill(rig, member=MEMBERS - 1, timeout=60)
        assert killed["detected_s"] is not None, killed
        assert killed["withdrawn_from_dns_s"] is not None and killed["withdrawn_from_etcd_s"] is not None, killed
        assert killed["answered_again_s"] is not None, killed
        # every answer before and during the write was a NOERROR answer with the name's A records
        assert killed["dns_query_ms_during_write"] is not None, killed
        assert killed["dns_query_ms_during_write_at_arrival"] is not None, killed  # stamped by the kernel
        assert killed["bad_answers_before"] == 0 and killed["bad_answers_during_write"] == 0, killed

        restarted = scale_phases.restart(rig, timeout=60)
        assert restarted["readyz_s"] is not None and restarted["answered_s"] is not None, restarted
        # nothing rewritten while the restarted daemon settles (the churn's tail may add a few)
        assert restarted["revisions_written_in_20s_after_start"] <= 10, restarted
        assert restarted["next_change_in_etcd_s"] is not None and \
            restarted["next_change_in_etcd_s"] < 10, restarted

"""app.joins.status_of: the status each Cluster format shows (pure)."""

from __future__ import annotations

import pytest

from fed_dns.apiserver.clusters import ClusterState
from fed_dns.app.joins import status_of
from fed_dns.federation.joining import FEDERATION_V1, KARMADA, KUBEFED, Join, Refusal, SecretRef

JOIN = Join(name="c4", format=KARMADA, namespace="", uid="u", created="", endpoint="https://m",
            secret=SecretRef(namespace="ns", name="s"),
            labels=(("topology.kubernetes.io/region", "ap"), ("topology.kubernetes.io/zone", "ap-1")))
READY = ClusterState(name="c4", health="ready", synced=True, since="2026-01-01T00:00:00Z")
REFUSED = Refusal(reason="SecretNotFound", message="secret ns/s not found")


@pytest.mark.parametrize(
    ("api_version", "state", "refusal", "version", "want"),
    [
        pytest.param(KARMADA, READY, None, "v1.31.0", {"kubernetesVersion": "v1.31.0"},
                     id="karmada-version-column"),
        pytest.param(KARMADA, READY, None, "", {}, id="karmada-version-not-asked-yet"),
        pytest.param(KARMADA, READY, REFUSED, "v1.31.0", {}, id="karmada-refused-no-version"),
        pytest.param(KUBEFED, READY, None, "v1.31.0", {}, id="kubefed-no-version-field"),
        pytest.param(FEDERATION_V1, READY, None, "", {"health": "ready", "region": "ap",
                                                       "zone": "ap-1", "synced": True},
                     id="v1-columns"),
        pytest.param(FEDERATION_V1, READY, REFUSED, "", {"health": "unreachable", "region": "ap",
                                                          "zone": "ap-1", "synced": False},
                     id="v1-refused"),
    ],
)
def test_status_of(api_version, state, refusal, version, want):
    status = status_of(JOIN, api_version=api_version, state=state, refusal=refusal,
                       version=version)
    (condition,) = status.pop("conditions")
    assert condition["type"] == "Ready"
    assert condition["status"] == ("False" if refusal else "True")
    assert status == want

"""ClusterStorage: config members (read only) and Clusters created through the API, one kind."""

from __future__ import annotations

import pytest

from fed_dns.apiserver import fedkinds
from fed_dns.apiserver.clusters import CLUSTER, ClusterState, ClusterStorage, cluster_object
from fed_dns.apiserver.memory import MemoryStorage, MemoryStore
from fed_dns.apiserver.status import ApiError

MEMBERS = [ClusterState(name="c1", health="ready"), ClusterState(name="c4", joined=True)]


def joined(name: str) -> dict:
    return {"apiVersion": CLUSTER.api_version, "kind": "Cluster", "metadata": {"name": name},
            "spec": {"secretRef": {"name": name}}}


@pytest.fixture
def store():
    return ClusterStorage(lambda: MEMBERS, MemoryStorage(MemoryStore(fedkinds.KINDS)))


async def test_config_members_and_created_clusters_list_together(store):
    await store.create(CLUSTER, joined("c4"))
    await store.create(CLUSTER, joined("a0"))
    listing = await store.list(CLUSTER, namespace=None, matcher=None)
    assert [s.obj["metadata"]["name"] for s in listing.items] == ["a0", "c1", "c4"]
    assert (await store.get(CLUSTER, namespace="", name="c4")).obj["spec"]["secretRef"]
    gone = await store.delete(CLUSTER, namespace="", name="c4")
    assert gone.obj["metadata"]["name"] == "c4"


@pytest.mark.parametrize("verb", ["create", "update", "delete"])
async def test_a_config_member_cannot_be_taken_changed_or_deleted(store, verb):
    with pytest.raises(ApiError) as exc:
        if verb == "delete":
            await store.delete(CLUSTER, namespace="", name="c1")
        else:
            await getattr(store, verb)(CLUSTER, joined("c1"))
    assert exc.value.code == {"create": 409, "update": 403, "delete": 403}[verb]
    assert "config file" in exc.value.status["message"]
    assert (await store.get(CLUSTER, namespace="", name="c1")).obj["status"]["health"] == "ready"


@pytest.mark.parametrize(("state", "ready"), [
    pytest.param(ClusterState(name="c1", health="ready", since="2024-01-01T00:00:00Z"),
                 ("True", "ClusterReady", "cluster is reachable"), id="ready"),
    pytest.param(ClusterState(name="c1", health="unreachable", message="probe timed out"),
                 ("False", "ClusterNotReachable", "probe timed out"), id="unreachable"),
    pytest.param(ClusterState(name="c1"), ("Unknown", "ClusterStateUnknown", "cluster is unknown"),
                 id="not-probed-yet"),
])
def test_each_cluster_has_a_ready_condition_as_federation_v1s(state, ready):
    obj = cluster_object(state, revision=3)
    [condition] = obj["status"]["conditions"]
    assert condition["type"] == "Ready"
    assert (condition["status"], condition["reason"], condition["message"]) == ready
    assert ("lastTransitionTime" in condition) == bool(state.since)
    assert obj["metadata"]["resourceVersion"] == "3"
    assert CLUSTER.cells(obj)[0] == state.health

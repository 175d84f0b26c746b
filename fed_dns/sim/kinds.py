"""The resource types a simulated cluster serves, as discovery describes them."""

from __future__ import annotations

from fed_dns.apiserver.builtin import (CONFIG_MAP, DEPLOYMENT, NAMESPACE, REPLICA_SET, SECRET,
                                       SERVICE)
from fed_dns.apiserver.kinds import Kind, Registry


def _slice(obj: dict) -> list:
    ports = ",".join(str(p.get("port", "")) for p in obj.get("ports") or []) or "<unset>"
    addresses = [a for e in obj.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addresses[:3]) + (f" + {len(addresses) - 3} more..." if len(addresses) > 3
                                        else "")
    return [obj.get("addressType", ""), ports, shown or "<unset>"]


ENDPOINT_SLICE = Kind(kind="EndpointSlice", plural="endpointslices", group="discovery.k8s.io",
                      version="v1", namespaced=True, singular="endpointslice",
                      columns=(("AddressType", "string"), ("Ports", "string"),
                               ("Endpoints", "string")), cells=_slice)

def _pod(obj: dict) -> list:
    st = obj.get("status") or {}
    statuses = st.get("containerStatuses") or []
    containers = ((obj.get("spec") or {}).get("containers")) or []
    ready = sum(1 for c in statuses if c.get("ready"))
    return [f"{ready}/{len(containers)}", st.get("phase", "Pending"),
            sum(int(c.get("restartCount", 0)) for c in statuses)]


POD = Kind(kind="Pod", plural="pods", group="", version="v1", namespaced=True,
           short_names=("po",), singular="pod", subresources=("status",), categories=("all",),
           delete_returns_object=True,
           columns=(("Ready", "string"), ("Status", "string"), ("Restarts", "integer")),
           cells=_pod)

KINDS: tuple[Kind, ...] = (NAMESPACE, SERVICE, ENDPOINT_SLICE, DEPLOYMENT, REPLICA_SET, POD,
                           CONFIG_MAP, SECRET)
REGISTRY = Registry(KINDS)

__all__ = ["DEPLOYMENT", "ENDPOINT_SLICE", "KINDS", "NAMESPACE", "POD", "REGISTRY", "REPLICA_SET",
           "SERVICE", "Kind"]

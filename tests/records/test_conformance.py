"""render() writes the fed-dns-owned keys of the recorded CoreDNS cases (../shared/conformance).

The case ids of non-headless leaves (`a1b2c3d4`, ...) were written by hand, not by
`backend_id`, so for those keys the id segment is compared by structure: it is replaced by
`<id of HOST>` on both sides, and both sides must use one id per address (the same in the
plain and in the SRV subtree). Everything else (every other key segment, and every decoded
value, field by field) is compared exactly. Headless pod names are compared exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fed_dns.model import Health, ServiceKey
from fed_dns.records.codec import backend_id, decode, encode
from fed_dns.records.render import render
from tests.records.builders import MYSQL, OWNER, SETTINGS, backend, service, tcp, view

CASES = Path(__file__).resolve().parents[2] / "tests" / "data" / "conformance" / "coredns-etcd.yaml"
READY, UNREACHABLE = Health.READY, Health.UNREACHABLE
PG = ServiceKey(namespace="db", name="pg")
API = ServiceKey(namespace="web", name="api")


def load_cases() -> dict[str, dict]:
    assert CASES.is_file(), f"conformance cases missing: {CASES}"
    return {case["name"]: case for case in yaml.safe_load(CASES.read_text())}


def scenario(name: str):
    """Views and health that describe the case, as the watchers and prober would report it."""
    if name == "global-name-aggregates-clusters":
        views = [view("c1", service(MYSQL, backend("10.1.0.7", tcp(3306)), backend("10.1.0.8", tcp(3306)))),
                 view("c2", service(MYSQL, backend("10.2.0.9", tcp(3306))))]
        return views, {"c1": READY, "c2": READY}, True
    if name == "fallback-cname-for-a-dead-cluster":
        views = [view("c1", service(MYSQL, backend("10.1.0.7", tcp(3306)))),
                 view("c2", service(MYSQL, backend("10.2.0.9", tcp(3306)))),  # last known
                 view("c3", service(MYSQL, backend("10.3.0.4", tcp(3306))))]
        return views, {"c1": READY, "c2": UNREACHABLE, "c3": READY}, True
    if name == "headless-pod-names":
        views = [view("c1", service(PG, backend("10.1.4.10", tcp(5432), hostname="pg-0"),
                                    backend("10.1.4.11", tcp(5432), hostname="pg-1"))),
                 view("c2", service(PG, backend("10.2.4.10", tcp(5432), hostname="pg-0")))]
        return views, {"c1": READY, "c2": READY}, False
    assert name == "srv-for-a-named-port"
    views = [view("c1", service(API, backend("10.1.2.3", tcp(8080, "http")))),
             view("c2", service(API, backend("10.2.2.3", tcp(8080, "http"))))]
    return views, {"c1": READY, "c2": READY}, True


def by_structure(entries: dict[str, dict], *, hashed_ids: bool) -> dict[str, dict]:
    """Key -> value with each leaf's id replaced by `<id of HOST>`; checks one id per host."""
    ids: dict[str, set[str]] = {}
    out = {}
    for key, value in entries.items():
        if hashed_ids and value.get("port") != -1:
            parent, ident = key.rsplit("/", 1)
            ids.setdefault(value["host"], set()).add(ident)
            key = f"{parent}/<id of {value['host']}>"
        out[key] = value
    assert all(len(found) == 1 for found in ids.values()), ids
    assert len({next(iter(found)) for found in ids.values()}) == len(ids)
    return out


@pytest.mark.parametrize("name", ["global-name-aggregates-clusters", "fallback-cname-for-a-dead-cluster",
                                  "headless-pod-names", "srv-for-a-named-port"])
def test_render_writes_the_owned_keys_of_the_case(name):
    case = load_cases()[name]
    assert case["zone"] == SETTINGS.zone
    views, health, hashed_ids = scenario(name)
    out = render(views={v.cluster: v for v in views}, health=health, settings=SETTINGS)
    assert out.rejected == () and out.zone.keep_clusters == frozenset()

    ours = {key: json.loads(encode(record)) for key, record in out.zone.records.items()}
    owned = {key: value for key, value in case["keys"].items() if value.get("owner") == OWNER}
    for value in owned.values():  # the case's values are byte for byte what encode writes
        compact = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        assert encode(decode(compact)) == compact
    if hashed_ids:
        assert all(key.rsplit("/", 1)[1] == backend_id(value["host"])
                   for key, value in ours.items() if value.get("port") != -1)
    expected = by_structure(owned, hashed_ids=hashed_ids)
    got = by_structure(ours, hashed_ids=hashed_ids)
    if name == "srv-for-a-named-port":
        # The recorded case omits c2's plain leaf; naming.md gives every backend one, and
        # CoreDNS's answers are the same with it (api.web A de-duplicates 10.2.2.3; the
        # SRV name reads only below _http._tcp). So: exactly one extra key, nothing else.
        extra = {"/skydns/com/example/fed/web/api/c2/<id of 10.2.2.3>": {
            "host": "10.2.2.3", "port": 8080, "ttl": 5, "owner": OWNER, "cluster": "c2"}}
        expected = {**expected, **extra}
    assert got == expected


def test_foreign_keys_of_the_cases_are_not_ours():
    """The dead-cluster case holds a hand-written alias with no owner: render never makes it."""
    keys = load_cases()["fallback-cname-for-a-dead-cluster"]["keys"]
    foreign = {key for key, value in keys.items() if value.get("owner") != OWNER}
    assert foreign == {"/skydns/com/example/fed/ns/alias/x"}

"""`fed-dns serve --config FILE`: the scale-out DNS tier takes its answer order (topology,
cluster regions and weights) from the same config file as the daemon."""

from __future__ import annotations

import subprocess
import uuid

import dns.message
import dns.query
import pytest
import yaml

from tests.server.helpers import EtcdKV, serving
from tests.support import fed_dns_command, wait_for

pytestmark = pytest.mark.etcd
ZONE = "fed.example.com."


def ask_from(source: str, port: int, name: str) -> list[str]:
    """A records of `name`, asked from the loopback address `source`."""
    query = dns.message.make_query(name, "A")
    reply = dns.query.udp(query, "127.0.0.1", port=port, timeout=2, source=source)
    return sorted(rr.to_text() for rrset in reply.answer for rr in rrset)


def test_serve_orders_answers_by_the_configs_topology(etcd_server, tmp_path):
    prefix = f"/cfg-{uuid.uuid4().hex[:8]}"
    base = f"{prefix}/com/example/fed/ns/mysql"
    EtcdKV(etcd_server.url).put_all({
        f"{base}/c1/a": b'{"cluster":"c1","host":"10.1.0.1","ttl":5}',
        f"{base}/c2/b": b'{"cluster":"c2","host":"10.2.0.1","ttl":5}',
    })
    config = tmp_path / "fed-dns.yaml"
    config.write_text(yaml.safe_dump({
        "zone": ZONE,
        "clusters": [{"name": "c1", "region": "east"}, {"name": "c2", "region": "west"}],
        "topology": {"mode": "local-first",
                     "subnets": {"127.0.0.2/32": "east", "127.0.0.3/32": "west"}},
    }))
    name = f"mysql.ns.{ZONE}"
    with serving(etcd_url=etcd_server.url, zone=ZONE, prefix=prefix,
                 extra=("--config", str(config))) as proc:
        wait_for(lambda: ask_from("127.0.0.1", proc.port, name) == ["10.1.0.1", "10.2.0.1"],
                 timeout=10, what="records loaded")
        assert ask_from("127.0.0.2", proc.port, name) == ["10.1.0.1"]
        assert ask_from("127.0.0.3", proc.port, name) == ["10.2.0.1"]
        assert ask_from("127.0.0.4", proc.port, name) == ["10.1.0.1", "10.2.0.1"]  # no region


def test_serve_with_a_bad_config_exits_2_naming_the_field(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("topology: {mode: sideways}\n")
    out = subprocess.run(fed_dns_command("serve", "--etcd", "http://127.0.0.1:1", "--zone", ZONE,
                                         "--config", str(config)),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "topology.mode" in out.stderr and str(config) in out.stderr

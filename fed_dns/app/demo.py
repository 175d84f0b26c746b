"""`fed-dns demo`: simulated member clusters on loopback + the daemon. No Kubernetes, no etcd.

Each simulated cluster cN gets namespace `ns` with an exported Service `mysql` (named port
`mysql`, 3306) and two ready endpoints 10.N.0.1 and 10.N.0.2 (DNS data only: nothing ever
connects to them), published in `endpoints` mode. The daemon watches them all and answers
DNS for fed.example.com.

The members run pods (SimCluster(pods=True)): once the daemon is ready, the demo creates a
federated Deployment `tomcat` (Federation v1: 4 replicas, weight 1 on every cluster,
rebalance) in the federation API, and each member has an exported Service `tomcat`
selecting its pods, so tomcat.default.fed.example.com answers the addresses of the ready
pods (10.N.1.x) wherever the replica loop placed them. With `--kill`, the guide prints the
replicas moving off the killed cluster and the answers following them.

With `--join-after S`, a fourth member starts after S seconds and joins with `kubectl apply`
of a Karmada Cluster + Secret on the federation API (written to the workdir); without kubectl
on PATH the demo says so and writes the same objects through the API storage instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

from fed_dns.app import logs
from fed_dns.app.run import asyncio_run
from fed_dns.federation.workloads import PREFERENCES

log = logging.getLogger("fed_dns.demo")
ZONE = "fed.example.com."
NAME = "mysql.ns." + ZONE
TOMCAT = "tomcat.default." + ZONE
TOMCAT_REPLICAS = 4


def demo_config(*, kubeconfigs: dict[str, Path], listen: str, http: str, etcd: str | None,
                api: str, workdir: Path):
    from fed_dns import config as config_mod

    data = {
        "zone": ZONE,
        "clusters": [
            {"name": name, "kubeconfig": str(path), "context": name, "region": f"region-{i}"}
            for i, (name, path) in enumerate(sorted(kubeconfigs.items()), start=1)
        ],
        "publish": "endpoints",
        "dns": {"listen": listen},
        "http": {"listen": http},
        "etcd": {"endpoints": [etcd] if etcd else []},
        "leader_election": {"enabled": bool(etcd)},
        "api": {"enabled": True, "listen": api, "dir": str(workdir / "api")},
    }
    return config_mod.parse(data, source="fed-dns demo")


def ask(*, server: tuple[str, int], name: str, timeout: float = 0.5) -> list[str]:
    """A/CNAME targets for `name` from our own server (dnslib, one UDP query)."""
    from dnslib import QTYPE, DNSRecord

    query = DNSRecord.question(name, "A")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(query.pack(), server)
        reply = DNSRecord.parse(sock.recv(4096))
    return sorted(f"{QTYPE[rr.rtype]} {rr.rdata}" for rr in reply.rr)


def tomcat_workload(*, clusters: list[str], replicas: int = TOMCAT_REPLICAS) -> dict:
    """The federated Deployment `tomcat` (Federation v1 preferences: weight 1 everywhere, a
    cluster that joins later included: `"*"`)."""
    prefs = {"rebalance": True, "clusters": {**{name: {"weight": 1} for name in clusters},
                                             "*": {"weight": 1}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "tomcat", "namespace": "default", "labels": {"app": "tomcat"},
                         "annotations": {PREFERENCES: json.dumps(prefs)}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "tomcat"}},
                     "template": {"metadata": {"labels": {"app": "tomcat"}},
                                  "spec": {"containers": [{
                                      "name": "tomcat", "image": "tomcat:9",
                                      "ports": [{"name": "http", "containerPort": 8080}]}]}}}}


def seed_tomcat_service(sim, *, index: int) -> None:
    """The member's exported Service `tomcat` selecting the federated pods (app=tomcat)."""
    from fed_dns.sim import objects, scenario

    sim.apply(objects.service(name="tomcat", namespace="default", ports=[("http", 8080)],
                              cluster_ip=f"10.{100 + index % 100}.0.11",
                              selector={"app": "tomcat"}, annotations=scenario.EXPORT))


async def apply_tomcat(daemon, *, clusters: list[str]) -> None:
    """Create the federated `tomcat` through the daemon's federation API storage."""
    from fed_dns.apiserver import fedkinds

    await daemon.api.storage.create(fedkinds.DEPLOYMENT, tomcat_workload(clusters=clusters))


def join_manifests(*, sim, name: str) -> list[dict]:
    """What `karmadactl join` makes for a member: a Secret (token, CA) and a Karmada Cluster."""
    import base64

    kubeconfig = sim.kubeconfig()
    ca = kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]
    ns = "karmada-cluster"
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-creds", "namespace": ns},
         "data": {"token": base64.b64encode(sim.token.encode()).decode(), "caBundle": ca}},
        {"apiVersion": "cluster.karmada.io/v1alpha1", "kind": "Cluster",
         "metadata": {"name": name, "labels": {"topology.kubernetes.io/region": f"region-{name}"}},
         "spec": {"apiEndpoint": sim.url, "syncMode": "Push",
                  "secretRef": {"namespace": ns, "name": f"{name}-creds"}}},
    ]


async def join_member(*, daemon, sims: dict, workdir: Path, federation_kubeconfig: Path | None,
                      kubectl: str | None) -> tuple[str, list[str]]:
    """Start one more simulated member and join it with `kubectl apply -f
    <workdir>/<name>-join.yaml` on the federation API (what `karmadactl join` makes: a
    Namespace, a Secret, a Karmada Cluster). Without kubectl (or if it fails), the same
    objects are written through the daemon's federation API storage, and the lines say so.
    Returns the member's name and the lines to show (kubectl's own output)."""
    import yaml

    from fed_dns.sim import scenario
    from fed_dns.sim.cluster import SimCluster

    index = len(sims) + 1
    name = f"c{index}"
    sim = SimCluster(name=name, use_tls=True, pods=True)
    await sim.start(host="127.0.0.1", port=0)
    scenario.seed_mysql(sim, index=index)
    seed_tomcat_service(sim, index=index)
    sim.write_kubeconfig(workdir / f"{name}.kubeconfig")
    sims[name] = sim
    docs = join_manifests(sim=sim, name=name)
    manifest = workdir / f"{name}-join.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    command = f"kubectl --kubeconfig {federation_kubeconfig} apply -f {manifest}"
    if kubectl is None or federation_kubeconfig is None:
        why = "kubectl not found on PATH" if kubectl is None else "no federation kubeconfig"
        await _create_all(daemon, docs)
        return name, [f"{why}: wrote {manifest} through the federation API (what "
                      "`kubectl apply -f` of it would do)"]
    code, out = await run_kubectl(kubectl, "--kubeconfig", str(federation_kubeconfig),
                                  "apply", "-f", str(manifest))
    lines = [f"$ {command}", *(f"  {line}" for line in out.splitlines() if line.strip())]
    if code != 0:
        await _create_all(daemon, docs)
        lines.append(f"kubectl exited {code}: wrote {manifest.name} through the federation "
                     "API instead")
    return name, lines


async def run_kubectl(kubectl: str, *args: str, timeout: float = 30.0) -> tuple[int, str]:
    """kubectl's exit code and output (stdout then stderr); a hung kubectl is killed."""
    proc = await asyncio.create_subprocess_exec(kubectl, *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        async with asyncio.timeout(timeout):  # not wait_for (3.11)
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, f"kubectl did not finish in {timeout:.0f}s"
    return proc.returncode, (out + err).decode(errors="replace")


async def _create_all(daemon, docs: list[dict]) -> None:
    """The join manifests written through the federation API storage (kubectl's fallback)."""
    from fed_dns.apiserver import fedkinds
    from fed_dns.apiserver.status import ApiError

    for doc in docs:
        kind = fedkinds.REGISTRY.for_object(doc)
        try:
            await daemon.api.storage.create(kind, doc)
        except ApiError as exc:
            if exc.code != 409:  # the namespace may be there already
                raise


def tomcat_replicas(daemon) -> dict[str, int]:
    """cluster -> replicas the replica loop placed there for `tomcat` (empty: no plan yet)."""
    if daemon.replicas is None:
        return {}
    for p in daemon.replicas.placements():
        if (p.get("kind"), p.get("namespace"), p.get("name")) == ("Deployment", "default",
                                                                  "tomcat"):
            return {row["cluster"]: row["desired"] for row in p.get("clusters", ())}
    return {}


def spread(replicas: dict[str, int]) -> str:
    return " ".join(f"{c}={n}" for c, n in sorted(replicas.items())) or "none placed"


async def main_async(args) -> int:
    from fed_dns.app.daemon import Daemon
    from fed_dns.sim import scenario
    from fed_dns.sim.cluster import SimCluster

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    names_ = [f"c{i}" for i in range(1, args.clusters + 1)]
    if args.kill and args.kill not in names_:
        print(f"fed-dns demo: --kill {args.kill!r} is not one of {', '.join(names_)}", file=sys.stderr)
        return 2
    sims: dict[str, SimCluster] = {}
    with _workdir(args.workdir) as tmp:
        try:
            kubeconfigs = {}
            for i, name in enumerate(names_, start=1):
                # kubectl sends tokens over HTTPS only; the members run the federated pods
                sim = SimCluster(name=name, use_tls=True, pods=True)
                await sim.start(host="127.0.0.1", port=0)
                scenario.seed_mysql(sim, index=i)
                seed_tomcat_service(sim, index=i)
                path = Path(tmp) / f"{name}.kubeconfig"
                sim.write_kubeconfig(path)
                sims[name], kubeconfigs[name] = sim, path
            config = demo_config(kubeconfigs=kubeconfigs, listen=args.listen, http=args.http,
                                 etcd=args.etcd, api=args.api, workdir=Path(tmp))
            daemon = Daemon(config=config)
            runner = asyncio.create_task(daemon.serve(stop=stop), name="daemon")
            server = (config.dns.host, config.dns.port)
            await _guide(daemon=daemon, sims=sims, args=args, server=server, stop=stop, runner=runner,
                         workdir=Path(tmp))
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        finally:
            for sim in sims.values():
                with contextlib.suppress(Exception):
                    await sim.close()
    return 0


@contextlib.contextmanager
def _workdir(path: str | None):
    """`--workdir DIR` (kept), else a new temporary directory (removed at the end)."""
    if path:
        Path(path).mkdir(parents=True, exist_ok=True)
        yield str(Path(path).resolve())
        return
    with tempfile.TemporaryDirectory(prefix="fed-dns-demo-") as tmp:
        yield tmp


def write_federation_kubeconfig(*, daemon, workdir: Path) -> Path | None:
    """`<workdir>/federation.kubeconfig` for the daemon's federation API (mode 0600)."""
    import yaml

    from fed_dns.app import apicreds

    if daemon.api is None:
        return None
    creds = apicreds.ensure(daemon.config.api)
    path = workdir / "federation.kubeconfig"
    text = yaml.safe_dump(apicreds.kubeconfig(server=daemon.api.url, creds=creds))
    partial = path.with_suffix(".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(partial, path)  # whole when it appears
    return path


async def _guide(*, daemon, sims, args, server, stop, runner, workdir: Path) -> None:
    host, port = server
    started = time.monotonic()
    while not daemon.ready():
        if runner.done() or stop.is_set():
            runner.result()
            return
        await asyncio.sleep(0.05)
    await asyncio.sleep(0)
    if daemon.api is not None:
        await apply_tomcat(daemon, clusters=list(sims))
    while not (await asyncio.to_thread(ask, server=server, name=NAME)) and time.monotonic() - started < 15:
        await asyncio.sleep(0.1)
    if daemon.api is not None:  # until every tomcat pod is ready and answered
        while len(await asyncio.to_thread(ask, server=server, name=TOMCAT)) < TOMCAT_REPLICAS \
                and time.monotonic() - started < 20:
            await asyncio.sleep(0.1)
    fed_kc = write_federation_kubeconfig(daemon=daemon, workdir=workdir)
    kubectl = ""
    if fed_kc is not None:
        first = next(iter(sims))
        member_kc = workdir / (first + '.kubeconfig')
        kubectl = f"""  kubectl --kubeconfig {fed_kc} get clusters
  kubectl --kubeconfig {fed_kc} get deployment tomcat     (federated: {TOMCAT_REPLICAS} replicas, rebalance)
  kubectl --kubeconfig {member_kc} get services,endpointslices -n ns
  kubectl --kubeconfig {member_kc} get deployments,pods -l app=tomcat
"""
    print(f"""
fed-dns demo: {len(sims)} simulated clusters ({', '.join(sims)}), zone {ZONE}
  DNS   {host}:{port} (UDP and TCP)      HTTP http://{args.http}/status  /metrics
  federation API {daemon.api.url if daemon.api else 'off'}      files in {workdir}
Try:
  dig @{host} -p {port} {NAME}
  dig @{host} -p {port} c1.{NAME}
  dig @{host} -p {port} _mysql._tcp.{NAME} SRV
  dig @{host} -p {port} {TOMCAT}
  curl -s http://{args.http}/status
{kubectl}Ready after {time.monotonic() - started:.1f}s. Ctrl-C stops the demo.
""", flush=True)
    killed_at = None
    last = None
    last_replicas: dict[str, int] | None = None
    joined: str | None = None
    last_tomcat = None
    deadline = started + args.duration if args.duration else None
    while not stop.is_set():
        now = time.monotonic()
        if deadline and now >= deadline:
            return
        extra = f" ({now - killed_at:.1f}s after the kill)" if killed_at else ""
        try:
            answer = await asyncio.to_thread(ask, server=server, name=NAME)
            local = await asyncio.to_thread(ask, server=server, name=f"{args.kill or 'c1'}.{NAME}")
            tomcat = await asyncio.to_thread(ask, server=server, name=TOMCAT) \
                if daemon.api is not None else None
        except OSError as exc:
            answer, local, tomcat = [f"error: {exc}"], [], last_tomcat
        if (answer, local) != last:
            print(f"[{now - started:5.1f}s] {NAME} -> {', '.join(answer) or 'no answer'}{extra}", flush=True)
            print(f"        {args.kill or 'c1'}.{NAME} -> {', '.join(local) or 'no answer'}", flush=True)
            last = (answer, local)
        replicas = tomcat_replicas(daemon)
        if replicas and replicas != last_replicas:
            moved = f"{spread(last_replicas)} -> " if last_replicas else ""
            print(f"[{now - started:5.1f}s] tomcat replicas: {moved}{spread(replicas)}{extra}",
                  flush=True)
            last_replicas = replicas
        if tomcat is not None and tomcat != last_tomcat:
            print(f"[{now - started:5.1f}s] {TOMCAT} -> {', '.join(tomcat) or 'no answer'}{extra}",
                  flush=True)
            last_tomcat = tomcat
        if args.join_after is not None and joined is None and daemon.api is not None \
                and now - started >= args.join_after:
            joined, lines = await join_member(daemon=daemon, sims=sims, workdir=workdir,
                                              federation_kubeconfig=fed_kc,
                                              kubectl=shutil.which("kubectl"))
            print(f"[{time.monotonic() - started:5.1f}s] joining cluster {joined} (a "
                  "cluster.karmada.io Cluster + its Secret, as karmadactl join makes them):",
                  flush=True)
            for line in lines:
                print(f"        {line}", flush=True)
            continue
        if args.kill and killed_at is None and now - started >= args.after:
            # after the answers above: the guide shows how things stood before the kill
            sims[args.kill].kill(mode="stop")
            killed_at = now = time.monotonic()
            print(f"[{now - started:5.1f}s] killed cluster {args.kill} (its API server stopped answering)",
                  flush=True)
            continue
        try:
            async with asyncio.timeout(0.25):  # not wait_for (3.11)
                await stop.wait()
        except TimeoutError:
            pass


def main(args) -> int:
    # The demo's own lines are the show; the daemon's warnings (a killed member's broken
    # watches) would bury them, so it logs errors only unless --log-level debug is given.
    logs.setup(fmt=args.log_format, level="error" if args.log_level == "info" else args.log_level)
    if args.clusters < 1 or args.clusters > 50:
        print("fed-dns demo: --clusters must be between 1 and 50", file=sys.stderr)
        return 2
    try:
        return asyncio_run(main_async(args))
    except OSError as exc:
        print(f"fed-dns demo: {exc}", file=sys.stderr)
        return 1

"""The measured phases of the scale benchmark, shared by bench/scale.py and the e2e scale test.

Each takes a `ScaleRig` whose members are seeded and returns a JSON-able dict of timings;
None for a time means "not reached within the timeout". Times are seconds, latencies ms.
"""

from __future__ import annotations

import time

from tests.e2e.scale_observers import AnswerProbe, Churn, EtcdWatch, QueryLoad, Window, reached
from tests.e2e.scale_support import EtcdCounts, ScaleRig, first_times, percentiles

SAMPLE = 50  # names checked per condition


def start(rig: ScaleRig, timeout: float) -> dict:
    sample = rig.sample(SAMPLE)
    rig.start_daemon()
    times = first_times({
        "readyz_s": rig.daemon.ready,
        "answered_s": lambda: rig.answered(sample),
        "all_keys_in_etcd_s": lambda: rig.key_count() >= rig.expected_keys,
    }, timeout=timeout, interval=0.5)
    return {**times, "keys_in_etcd": rig.key_count(), "expected_keys": rig.expected_keys, "rss_mb": rig.rss()}


def churn(rig: ScaleRig, rate: float, duration: float, counter: int, *, hang: int | None = None,
          timeout: float = 60.0) -> dict:
    """`rate` changes/s for `duration` s on the live members; with `hang`, that member hangs
    after a fifth of the duration and its withdrawal is timed. A change counts as in etcd
    (or answered) once it or a later change of the same Service is."""
    live = [m for m in range(rig.members) if m != hang]
    quiet_s = None
    if hang is not None:  # a member revived just before still has its records written back
        quiet_s = quiet_etcd(EtcdCounts(rig.etcd_url), expected=rig.expected_keys, prefix=rig.prefix,
                             quiet=3.0, timeout=timeout)
    watch = EtcdWatch(rig.etcd_url, rig.prefix).start()
    if not watch.ready.wait(10):
        watch.stop()
        raise RuntimeError("etcd watch not created within 10 s")
    load = Churn(rig, rate=rate, members=live, counter_start=counter)
    answers = AnswerProbe(rig, timeout=10.0, since=load.since).start()
    load.on_change = answers.offer
    ticks, withdrawal = [], None
    hung_services = [n for _, n in rig.sample(SAMPLE, seed=7)]
    gc_before, cpu_before, disk_before = gc_pauses(rig), rig.cpu_seconds(), etcd_disk(rig)
    started, cpu = time.monotonic(), time.process_time()
    load.start()
    try:
        while time.monotonic() - started < duration:
            time.sleep(min(5.0, max(0.0, duration - (time.monotonic() - started))) if hang is None or withdrawal
                       else 0.5)
            ticks.append(time.monotonic())
            if hang is not None and withdrawal is None and time.monotonic() - started >= duration / 5:
                rig.kill(hang, mode="hang")
                withdrawal = first_times({
                    "detected_s": lambda: rig.unreachable(hang),
                    "dns_s": lambda: rig.withdrawn_from_dns(hang, hung_services),
                    "etcd_s": lambda: rig.withdrawn_from_etcd(hang, hung_services),
                }, timeout=timeout, interval=0.1)
    finally:
        changes = load.stop()
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu
        cpu_after = rig.cpu_seconds()
    key = lambda c: rig.key_of(c.member, c.n, c.address)  # noqa: E731
    latest = [history[-1] for history in load.by_service.values()]
    drained = first_times({"all_in_etcd_s": lambda: all(key(c) in watch.seen for c in latest)},
                          timeout=timeout, interval=0.5)
    answers.stop()
    watch.stop()
    times = reached(changes, dict(watch.seen), key)
    arrivals = [0] * (int(elapsed) + 1)  # changes that reached etcd in each second of the churn
    for r in times:
        if r is not None and 0 <= r - started < len(arrivals):
            arrivals[int(r - started)] += 1
    backlog = [{"t_s": round(t - started, 1),
                "not_in_etcd": sum(1 for c, r in zip(changes, times) if c.at <= t and (r is None or r > t))}
               for t in ticks]
    growing = len(backlog) >= 3 and backlog[-1]["not_in_etcd"] > 2 * max(backlog[0]["not_in_etcd"], rate)
    out = {"rate_per_s": rate, "duration_s": round(elapsed, 1), "changes": len(changes),
           "achieved_rate_per_s": round(len(changes) / elapsed, 1),
           "churn_loop_behind_max_s": round(load.behind, 3),
           "bench_process_cpu_share": round(cpu / elapsed, 2),  # sims + observers, of one core
           "event_to_answer_ms": percentiles(answers.latencies, scale=1000, digits=1),
           "answers_missed_10s": answers.missed, "answers_misread": answers.misread,
           "event_to_etcd_ms": percentiles([r - c.at for c, r in zip(changes, times) if r is not None],
                                           scale=1000, digits=1),
           "never_in_etcd": sum(1 for r in times if r is None), "drain_after_end_s": drained["all_in_etcd_s"],
           "backlog": backlog, "backlog_growing": growing, "etcd_arrivals_per_s": arrivals, "rss_mb": rig.rss(),
           "gc_pauses": gc_delta(gc_before, gc_pauses(rig)),
           "cpu_share": cpu_share(cpu_before, cpu_after, elapsed),
           "etcd_disk": disk_delta(disk_before, etcd_disk(rig))}
    if hang is not None:
        out["hang"] = {"member": hang, "etcd_quiet_before_s": quiet_s,
                       **(withdrawal or {"detected_s": None, "dns_s": None, "etcd_s": None})}
    return out


def histograms(rig: ScaleRig, name: str, label: str) -> dict[tuple[str, str], tuple[float, float, dict[float, float]]]:
    """The daemon's histogram `name`: (its `label`, ...) -> (count, sum, cumulative buckets)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict = {}
    try:
        text = rig.daemon.metrics()
    except OSError:
        return out
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            key = tuple(sample.labels[k] for k in label.split(","))
            count, total, buckets = out.get(key, (0.0, 0.0, {}))
            if sample.name.endswith("_count"):
                count = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_bucket"):
                buckets = {**buckets, float(sample.labels["le"]): sample.value}
            out[key] = (count, total, buckets)
    return out


def gc_pauses(rig: ScaleRig) -> dict[tuple[str, str], tuple[float, float, dict[float, float]]]:
    """The daemon's fed_dns_gc_pause_seconds: (process, generation) -> (count, sum, buckets)."""
    return histograms(rig, "fed_dns_gc_pause_seconds", "process,generation")


def server_dns(rig: ScaleRig) -> tuple[float, float, dict[float, float]]:
    """UDP requests answered by every DNS process: (count, sum, buckets) of the server's own
    read-to-sent time (what the server spent, without the machine's scheduling before)."""
    return histograms(rig, "fed_dns_dns_request_duration_seconds", "protocol").get(("udp",), (0.0, 0.0, {}))


def server_dns_delta(before: tuple, after: tuple) -> dict:
    """Requests between two scrapes (each worker reports once a second), the bucket bound
    (ms) that 99 % of them were under (None: above the last bound, 10 ms), and how many took
    over 1 ms and over 10 ms."""
    count = after[0] - before[0]
    under = {bound: after[2][bound] - before[2].get(bound, 0.0) for bound in sorted(after[2])}
    p99 = next((bound * 1000 for bound, n in under.items() if count and n >= 0.99 * count), None)
    return {"n": int(count), "p99_under_ms": None if p99 == float("inf") else p99,
            "over_1ms": int(count - under.get(0.001, 0.0)), "over_10ms": int(count - under.get(0.01, 0.0))}


ETCD_DISK = ("etcd_disk_wal_fsync_duration_seconds", "etcd_disk_backend_commit_duration_seconds")


def etcd_metrics(rig: ScaleRig) -> str:
    """etcd's /metrics text ("" when it does not answer)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{rig.etcd_url}/metrics", timeout=5) as response:
            return response.read().decode()
    except OSError:
        return ""


def etcd_disk(rig: ScaleRig) -> dict[str, tuple[float, float, float]]:
    """etcd's own disk histograms: name -> (count, sum, count over 0.5 s). A slow disk
    stalls every write of etcd, whatever the daemon does."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(etcd_metrics(rig)):
        if family.name not in ETCD_DISK:
            continue
        get = lambda suffix, le=None: sum(x.value for x in family.samples if x.name.endswith(suffix)  # noqa: E731
                                          and (le is None or x.labels.get("le") == le))
        count = get("_count")
        out[family.name.removeprefix("etcd_disk_").removesuffix("_duration_seconds")] = (
            count, get("_sum"), count - get("_bucket", "0.512"))
    return out


ETCD_DB = {"etcd_mvcc_db_total_size_in_bytes": "size_mb",
           "etcd_mvcc_db_total_size_in_use_in_bytes": "in_use_mb"}


def db_sizes(text: str) -> dict[str, float]:
    """etcd's database file and the part of it in use, in MB, from its /metrics text: what
    the history left (a compaction frees pages for reuse; only a defrag shrinks the file)."""
    from prometheus_client.parser import text_string_to_metric_families

    return {ETCD_DB[family.name]: round(family.samples[0].value / 1e6, 2)
            for family in text_string_to_metric_families(text)
            if family.name in ETCD_DB and family.samples}


def disk_delta(before: dict, after: dict) -> dict:
    return {name: {"count": int(count - before.get(name, (0, 0, 0))[0]),
                   "seconds": round(total - before.get(name, (0, 0, 0))[1], 3),
                   "over_512ms": int(slow - before.get(name, (0, 0, 0))[2])}
            for name, (count, total, slow) in after.items()}


def gc_delta(before: dict, after: dict) -> dict:
    """Per process and generation, the collections between two scrapes: how many, their
    total seconds, and how many took over 50 ms / 250 ms."""
    out = {}
    for key, (count, total, buckets) in sorted(after.items()):
        count0, total0, buckets0 = before.get(key, (0.0, 0.0, {}))
        over = lambda bound: (count - buckets.get(bound, 0)) - (count0 - buckets0.get(bound, 0))  # noqa: E731
        out[f"{key[0]}/gen{key[1]}"] = {"count": int(count - count0), "seconds": round(total - total0, 3),
                                        "over_50ms": int(over(0.05)), "over_250ms": int(over(0.25))}
    return out


def kill(rig: ScaleRig, member: int, timeout: float, samples: list[Window] | None = None) -> dict:
    """One member killed and revived: detection, withdrawal from DNS and etcd, the DNS
    latency before and during the write (to the client's read of each answer, and to its
    arrival: query_client); the write's window of queries is added to `samples`."""
    services = [n for _, n in rig.sample(SAMPLE, seed=3)]
    others = [rig.merged_name(n) for _, n in rig.sample(200, seed=5)]
    load = QueryLoad(rig, others).start()
    try:
        server_start = server_dns(rig)
        time.sleep(2.0)
        quiet = load.take()
        server_quiet = server_dns(rig)
        disk_before, cpu_before, killed_at = etcd_disk(rig), rig.cpu_seconds(), time.monotonic()
        rig.kill(member, mode="stop")
        times = first_times({"detected_s": lambda: rig.unreachable(member),
                             "dns_s": lambda: rig.withdrawn_from_dns(member, services),
                             "etcd_s": lambda: rig.withdrawn_from_etcd(member, services)},
                            timeout=timeout, interval=0.05)
        cpu = cpu_share(cpu_before, rig.cpu_seconds(), time.monotonic() - killed_at)
        during = load.take()
        server_during = server_dns(rig)
        if samples is not None:
            samples.append(during)
    finally:
        load.stop()
    rig.revive(member)
    back = first_times({"answered_again_s": lambda: rig.answered([(member, n) for n in services])},
                       timeout=timeout, interval=0.2)
    return {"member": member, "detected_s": times["detected_s"], "withdrawn_from_dns_s": times["dns_s"],
            "withdrawn_from_etcd_s": times["etcd_s"],
            **latency("dns_query_ms_before", [quiet]),
            "timeouts_before": quiet.timeouts, "bad_answers_before": quiet.bad,
            **latency("dns_query_ms_during_write", [during]),
            "timeouts_during_write": during.timeouts, "bad_answers_during_write": during.bad,
            "cpu_share_until_withdrawn": cpu,
            "server_dns_before": server_dns_delta(server_start, server_quiet),
            "server_dns_during_write": server_dns_delta(server_quiet, server_during),
            "etcd_disk": disk_delta(disk_before, etcd_disk(rig)), **back}


def kills(rig: ScaleRig, count: int, timeout: float) -> dict:
    """`count` kills (members M-1, M-2, ... in turn, each revived and answering again
    before the next): each one's result, and the DNS latency during all their writes."""
    samples: list[Window] = []
    runs = [kill(rig, (rig.members - 1 - i) % rig.members, timeout, samples) for i in range(count)]
    return {"runs": runs, **latency("dns_query_ms_during_writes", samples)}


def latency(name: str, windows: list[Window]) -> dict:
    """`name`: the windows' DNS round trips (ms) to the client's read of each answer;
    `name`_at_arrival: the same to each answer's arrival in the kernel (query_client)."""
    return {name: percentiles([rtt for window in windows for rtt in window.rtts], scale=1000, digits=2),
            f"{name}_at_arrival": percentiles([rtt for window in windows for rtt in window.arrivals],
                                              scale=1000, digits=2)}


def quiet_etcd(kv: EtcdCounts, *, expected: int, prefix: str, quiet: float, timeout: float) -> float | None:
    """Seconds until etcd holds `expected` keys under `prefix` and no revision came for
    `quiet` s (None: not within `timeout`): the writes of an earlier phase are over."""
    start = time.monotonic()
    last, since = kv.revision(), time.monotonic()
    while time.monotonic() - start < timeout:
        time.sleep(0.25)
        now = kv.revision()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet and kv.count(prefix) >= expected:
            return round(time.monotonic() - start, 2)
    return None


def cpu_share(before: dict[str, float], after: dict[str, float], seconds: float) -> dict[str, float]:
    """CPU seconds per second of each part of `ScaleRig.cpu_seconds` between two readings
    (1.0: one CPU's worth; the machine has two)."""
    return {k: round((v - before.get(k, 0.0)) / seconds, 2) for k, v in after.items()}


def restart(rig: ScaleRig, timeout: float) -> dict:
    """Restart once etcd is quiet (a member revived just before still has its records
    written back, which are not the restart's), then count the revisions it writes."""
    kv = EtcdCounts(rig.etcd_url)
    settled = quiet_etcd(kv, expected=rig.expected_keys, prefix=rig.prefix, quiet=3.0, timeout=timeout)
    before, disk_before, db = kv.revision(), etcd_disk(rig), db_sizes(etcd_metrics(rig))
    rig.restart_daemon()
    cpu_before, started = rig.cpu_seconds(), time.monotonic()  # the new daemon's, from its start
    sample = rig.sample(SAMPLE, seed=11)
    times = first_times({"readyz_s": rig.daemon.ready, "answered_s": lambda: rig.answered(sample)},
                        timeout=timeout, interval=0.2)
    cpu = cpu_share(cpu_before, rig.cpu_seconds(), time.monotonic() - started)
    settle = 20.0
    time.sleep(settle)
    written = kv.revision() - before
    member, n = sample[0]
    address = "10.255.255.254"
    rig.replace_last(member, n, address)
    key = rig.key_of(member, n, address)
    next_change = first_times({"next_change_in_etcd_s": lambda: key in kv.keys(key)}, timeout=timeout,
                              interval=0.05)
    return {"etcd_quiet_before_s": settled, "etcd_revision_before": before, "etcd_db_before": db, **times,
            "cpu_share_until_ready": cpu, f"revisions_written_in_{settle:g}s_after_start": written,
            **next_change, "rss_mb": rig.rss(), "etcd_disk": disk_delta(disk_before, etcd_disk(rig))}

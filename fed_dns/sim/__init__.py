"""Simulated member clusters: Kubernetes API servers on loopback for the demo and the tests.

    from fed_dns.sim.cluster import SimCluster
    from fed_dns.sim import objects, scenario

    cluster = SimCluster(name="c1")              # token=None -> random; use_tls=True for kubectl
    await cluster.start()                        # host="127.0.0.1", port=0
    cluster.write_kubeconfig(path)               # cluster/user/context all named "c1"
    scenario.seed_mysql(cluster, index=1)
    cluster.apply(objects.service(name="web", namespace="ns", ports=[("http", 80)]))
    cluster.kill("stop")  # or "hang";  await cluster.revive();  await cluster.close()

Modules: `kinds` (served resources), `store` (objects, resourceVersion, history, watchers),
`watchers` (one open watch), `defaults` (server-side defaults, Deployment status),
`selectors`, `patch`, `status` (Status errors), `discovery`, `openapi`, `tables`
(kubectl printing), `api` (routes and handlers), `streams` (watch responses), `context`,
`tls`, `cluster` (lifecycle), `objects` (builders), `scenario` (seeding helpers).
Imports nothing of fed_dns but model (import-linter).
"""

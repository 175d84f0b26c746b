"""Simulated member clusters: Kubernetes API servers on loopback for the demo and the tests.

    from fed_dns.sim.cluster import SimCluster
    from fed_dns.sim import objects, scenario

    cluster = SimCluster(name="c1")              # token=None -> random; use_tls=True for kubectl
    await cluster.start()                        # host="127.0.0.1", port=0
    cluster.write_kubeconfig(path)               # cluster/user/context all named "c1"
    scenario.seed_mysql(cluster, index=1)
    cluster.apply(objects.service(name="web", namespace="ns", ports=[("http", 80)]))
    cluster.kill("stop")  # or "hang";  await cluster.revive();  await cluster.close()

The Kubernetes API machinery (routes, discovery, OpenAPI, patch, watch, tables, the memory
store) is `fed_dns.apiserver`; this package adds the member kinds and their behaviour:
`kinds` (Service, EndpointSlice, Pod, with apiserver's Namespace, Deployment and
ReplicaSet), `store` (the memory store with validation, ClusterIPs, controller-free workload
status, namespaces, owners taking their dependents), `storage` (namespaces terminate over the
API), `defaults`, `controllers` (with `SimCluster(pods=True)`: ReplicaSets, Pods up to a
capacity, readiness, statuses, the EndpointSlices of selector Services), `cluster`
(lifecycle), `objects`
(builders), `scenario` (seeding helpers). Imports nothing of fed_dns but model and apiserver
(import-linter).
"""

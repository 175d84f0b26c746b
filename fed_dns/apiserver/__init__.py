"""The Kubernetes API machinery, served over aiohttp, with a small storage protocol.

    served = Served(storage=MemoryStorage(store) | EtcdStorage(...), registry=Registry(kinds),
                    tokens=(token,), admit=admission)
    app = handlers.build_app(served)

Modules: `kinds` (Kind, Registry), `builtin` (Namespace, Secret, ConfigMap, Deployment,
ReplicaSet), `handlers` (routes: get/list/create/update/patch/delete/watch), `discovery`,
`openapi`, `tables` (kubectl printing), `streams` (watch responses, bookmarks), `watchers`
(one open watch), `selectors`, `patch` (merge, strategic, JSON patch), `scale`, `status`
(Status errors), `storage` (the protocol and shared metadata rules), `memory` (the memory
store), `etcd3` (the etcd store), `context` (Served), `tls` (self-signed certificates).
Imports nothing of fed_dns but model (import-linter): the simulator and the daemon build on it.
"""

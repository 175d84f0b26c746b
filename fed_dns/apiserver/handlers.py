"""The aiohttp application: auth, discovery, and get/list/create/update/patch/delete/watch."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import json
from dataclasses import dataclass

from aiohttp import web

from fed_dns.sim import discovery, openapi, patch, streams, tables
from fed_dns.sim.context import Served
from fed_dns.sim.kinds import DEPLOYMENT, ENDPOINT_SLICE, NAMESPACE, Kind
from fed_dns.sim.selectors import both, field_selector, label_selector
from fed_dns.sim.status import ApiError, not_found, status
from fed_dns.sim.store import Stored
from fed_dns.sim.watchers import dumps

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
_JSON = "application/json"


def respond(body: dict | bytes, *, code: int = 200) -> web.Response:
    data = body if isinstance(body, bytes) else dumps(body)
    return web.Response(body=data, status=code, content_type=_JSON)


def error_response(exc: ApiError) -> web.Response:
    return respond(exc.status, code=exc.code)


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    namespace: str | None  # None: every namespace (or a cluster-scoped kind)
    name: str | None
    subresource: str | None


def parse_path(path: str) -> Target | None:
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 3 and segs[0] == "api" and segs[1] == "v1":
        gv, rest = "v1", segs[2:]
    elif len(segs) >= 4 and segs[0] == "apis":
        gv, rest = f"{segs[1]}/{segs[2]}", segs[3:]
    else:
        return None
    plurals = discovery.kinds_by_plural(gv)
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] in plurals \
            and plurals[rest[2]].namespaced:
        namespace, rest = rest[1], rest[2:]
    kind = plurals.get(rest[0])
    if kind is None or len(rest) > 3 or (namespace is not None and not kind.namespaced):
        return None
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if sub is not None and sub not in kind.subresources:
        return None
    return Target(kind=kind, namespace=namespace, name=name, subresource=sub)


def build_app(served: Served) -> web.Application:
    @web.middleware
    async def gate(request: web.Request, handler):
        await served.until_answering()
        if request.path not in OPEN_PATHS:
            header = request.headers.get("Authorization", "")
            if not hmac.compare_digest(header.encode(), f"Bearer {served.token}".encode()):
                return respond(status(code=401, message="Unauthorized"), code=401)
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(exc)

    app = web.Application(middlewares=[gate], client_max_size=64 << 20)
    async def handle(request: web.Request) -> web.StreamResponse:
        return await dispatch(request, served)

    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def dispatch(request: web.Request, served: Served) -> web.StreamResponse:
    path = request.path.rstrip("/") or "/"
    if request.method == "GET":
        doc = _fixed(path, served)
        if doc is not None:
            return doc
    target = parse_path(path)
    if target is None:
        raise ApiError(code=404, message="the server could not find the requested resource",
                       reason="NotFound")
    m = request.method
    if target.name is None:
        if m == "GET":
            if request.query.get("watch", "").lower() in ("1", "true"):
                return await streams.watch(request, served=served, kind=target.kind,
                                           namespace=target.namespace, matcher=_matcher(request))
            return _list(request, served, target)
        if m == "POST":
            return await _create(request, served, target)
        if m == "DELETE":
            return _delete_collection(request, served, target)
    else:
        if m == "GET":
            return _get(request, served, target)
        if m == "PUT":
            return await _update(request, served, target)
        if m == "PATCH":
            return await _patch(request, served, target)
        if m == "DELETE" and target.subresource is None:
            return await _delete(request, served, target)
    raise ApiError(code=405, message=f"the server does not allow this method on the requested "
                   f"resource ({m})", reason="MethodNotAllowed")


def _fixed(path: str, served: Served) -> web.Response | None:
    if path in ("/healthz", "/livez", "/readyz"):
        return web.Response(text="ok")
    if path == "/version":
        return respond(discovery.version())
    if path == "/api":
        return respond(discovery.core_versions(server=served.url))
    if path == "/apis":
        return respond(discovery.group_list())
    if path == "/openapi/v3":
        return respond(openapi.index())
    if path.startswith("/openapi/v3/"):
        doc = openapi.document_bytes(path[len("/openapi/v3/"):])
        if doc is not None:
            return respond(doc)
    if path == "/openapi/v2":
        # Older kubectl (Debian's 1.20) validates against OpenAPI v2, in protobuf only. An
        # empty Document is a valid message; kubectl skips validation of kinds it lacks.
        return web.Response(body=b"", content_type=openapi.V2_PROTOBUF)
    if path.startswith("/openapi/"):
        raise ApiError(code=404, message="the simulator serves no such OpenAPI document")
    segs = path.strip("/").split("/")
    if segs == ["api", "v1"]:
        return respond(discovery.resource_list("v1"))
    if len(segs) == 2 and segs[0] == "apis":
        doc = discovery.group(segs[1])
        return respond(doc) if doc else None
    if len(segs) == 3 and segs[0] == "apis":
        doc = discovery.resource_list(f"{segs[1]}/{segs[2]}")
        return respond(doc) if doc else None
    return None


def _matcher(request: web.Request):
    return both(label_selector(request.query.get("labelSelector")),
                field_selector(request.query.get("fieldSelector")))


def _continue_after(token: str | None) -> tuple[tuple[str, str] | None, str | None]:
    if not token:
        return None, None
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        return (doc["ns"], doc["name"]), str(doc["rv"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(code=400, message="invalid continue token") from None


def _list(request: web.Request, served: Served, target: Target) -> web.Response:
    q = request.query
    try:
        limit = int(q.get("limit") or 0)
    except ValueError:
        raise ApiError(code=400, message=f"invalid limit {q.get('limit')!r}") from None
    after, first_rv = _continue_after(q.get("continue"))
    items, last = served.store.list(target.kind, namespace=target.namespace,
                                    matcher=_matcher(request), after=after, limit=max(limit, 0))
    rv = first_rv or str(served.store.rv)
    if tables.wanted(request):
        return respond(tables.table(target.kind, [s.obj for s in items], resource_version=rv))
    meta: dict = {"resourceVersion": rv}
    if last is not None:
        meta["continue"] = base64.urlsafe_b64encode(
            dumps({"ns": last[0], "name": last[1], "rv": rv})).decode()
        meta["remainingItemCount"] = 0
    head = dumps({"kind": target.kind.list_kind, "apiVersion": target.kind.api_version,
                  "metadata": meta})
    body = head[:-1] + b',"items":[' + b",".join(s.data for s in items) + b"]}"
    return respond(body)


def _require(served: Served, target: Target) -> Stored:
    return served.store.require(target.kind, namespace=target.namespace or "", name=target.name)


def _get(request: web.Request, served: Served, target: Target) -> web.Response:
    stored = _require(served, target)
    if target.subresource == "scale":
        return respond(scale_of(stored.obj))
    if tables.wanted(request):
        return respond(tables.table(target.kind, [stored.obj], resource_version=None))
    return respond(stored.data)


async def _body(request: web.Request) -> object:
    try:
        return json.loads(await request.read() or b"null")
    except ValueError as exc:
        raise ApiError(code=400, message=f"the request body is not valid JSON: {exc}") from None


def _object_body(body: object, target: Target, *, name: str | None) -> dict:
    if not isinstance(body, dict):
        raise ApiError(code=400, message="the request body must be a JSON object")
    kind = target.kind
    if body.get("kind") not in (None, kind.kind) or \
            body.get("apiVersion") not in (None, kind.api_version):
        raise ApiError(code=400, message=f"the body is {body.get('apiVersion')} "
                       f"{body.get('kind')}, not {kind.api_version} {kind.kind}")
    meta = body.setdefault("metadata", {})
    if not isinstance(meta, dict):
        raise ApiError(code=400, message="metadata must be an object")
    if kind.namespaced:
        ns = meta.get("namespace") or target.namespace
        if target.namespace is None:
            raise ApiError(code=404, message="the server could not find the requested resource")
        if ns != target.namespace:
            raise ApiError(code=400, message="the namespace of the provided object does not "
                           "match the namespace sent on the request")
        meta["namespace"] = ns
    if name is not None:
        if meta.get("name") not in (None, name):
            raise ApiError(code=400, message="the name of the object "
                           f"({meta.get('name')}) does not match the name on the URL ({name})")
        meta["name"] = name
    return body


def _no_dry_run(request: web.Request) -> None:
    if request.query.get("dryRun"):
        raise ApiError(code=400, message="dryRun is not supported by the simulator")


async def _create(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    obj = _object_body(await _body(request), target, name=None)
    return respond(served.store.create(target.kind, obj).data, code=201)


async def _update(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    body = await _body(request)
    if target.subresource == "scale":
        return respond(_set_scale(served, target, body))
    obj = _object_body(body, target, name=target.name)
    return respond(served.store.update(target.kind, obj, subresource=target.subresource).data)


async def _patch(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    body = await _body(request)
    stored = _require(served, target)
    ctype = request.headers.get("Content-Type", "")
    if target.subresource == "scale":
        scaled = patch.apply(content_type=ctype, target=scale_of(stored.obj), body=body)
        return respond(_set_scale(served, target, scaled))
    patched = patch.apply(content_type=ctype, target=stored.obj, body=body,
                          atomic_lists=target.kind is ENDPOINT_SLICE)
    obj = _object_body(patched, target, name=target.name)
    if obj["metadata"].get("resourceVersion") in (None, ""):
        obj["metadata"]["resourceVersion"] = stored.obj["metadata"]["resourceVersion"]
    return respond(served.store.update(target.kind, obj, subresource=target.subresource).data)


def _delete_options(body: object) -> dict:
    return (body.get("preconditions") or {}) if isinstance(body, dict) else {}


async def _delete(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    pre = _delete_options(await _body(request))
    if target.kind is NAMESPACE:
        return respond(_terminate_namespace(served, target.name).data)
    gone = served.store.delete(target.kind, namespace=target.namespace or "", name=target.name,
                               preconditions=pre)
    if target.kind.kind == "Service":
        return respond(gone.data)
    meta = gone.obj["metadata"]
    return respond(status(code=200, message="", reason="", details={
        "name": meta["name"], "group": target.kind.group, "kind": target.kind.plural,
        "uid": meta.get("uid")}))


def _terminate_namespace(served: Served, name: str) -> Stored:
    """Namespaces go Terminating first and vanish (with their contents) a little later, so
    `kubectl delete -f` of a namespace and its objects finds them still there."""
    store = served.store
    stored = store.terminate_namespace(name)
    uid = stored.obj["metadata"]["uid"]

    def finish() -> None:
        current = store.get(NAMESPACE, namespace="", name=name)
        if current is not None and current.obj["metadata"]["uid"] == uid:
            store.delete(NAMESPACE, namespace="", name=name)

    asyncio.get_running_loop().call_later(served.namespace_grace, finish)
    return stored


def _delete_collection(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    items, _ = served.store.list(target.kind, namespace=target.namespace,
                                 matcher=_matcher(request))
    for s in items:
        meta = s.obj["metadata"]
        served.store.delete(target.kind, namespace=meta.get("namespace", ""), name=meta["name"])
    head = dumps({"kind": target.kind.list_kind, "apiVersion": target.kind.api_version,
                  "metadata": {"resourceVersion": str(served.store.rv)}})
    return respond(head[:-1] + b',"items":[' + b",".join(s.data for s in items) + b"]}")


def scale_of(obj: dict) -> dict:
    meta = obj["metadata"]
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                          "creationTimestamp") if k in meta},
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
        "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                   "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))},
    }


def _set_scale(served: Served, target: Target, scale: object) -> dict:
    if target.kind is not DEPLOYMENT or not isinstance(scale, dict):
        raise ApiError(code=400, message="expected an autoscaling/v1 Scale")
    replicas = (scale.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise ApiError(code=422, message=f'Scale.autoscaling "{target.name}" is invalid: '
                       "spec.replicas: must be a non-negative integer", reason="Invalid")
    stored = _require(served, target)
    sent_rv = (scale.get("metadata") or {}).get("resourceVersion")
    obj = dict(stored.obj, spec=dict(stored.obj.get("spec") or {}, replicas=replicas))
    obj["metadata"] = dict(obj["metadata"], resourceVersion=sent_rv or
                           stored.obj["metadata"]["resourceVersion"])
    if not served.store.get(target.kind, namespace=target.namespace or "", name=target.name):
        raise not_found(resource=target.kind.plural, name=target.name, group=target.kind.group)
    return scale_of(served.store.update(target.kind, obj).obj)

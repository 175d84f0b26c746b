"""The aiohttp application: auth, discovery, and get/list/create/update/patch/delete/watch.

Generic over the kinds (`Served.registry`) and the store (`Served.storage`); admission
(`Served.admit`) checks and defaults objects before they are stored.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass

from aiohttp import web

from fed_dns.apiserver import discovery, openapi, patch, scale, streams, tables
from fed_dns.apiserver.context import Served
from fed_dns.apiserver.kinds import Kind, Registry
from fed_dns.apiserver.selectors import both, field_selector, label_selector
from fed_dns.apiserver.status import ApiError, not_found, status
from fed_dns.apiserver.storage import Stored, generate_name
from fed_dns.apiserver.watchers import dumps

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
_JSON = "application/json"
PATCH_ATTEMPTS = 5  # a patch without a resourceVersion is retried on a concurrent write


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
    group_version: str = ""  # as requested (an alias of the kind's own, or its own)


def parse_path(registry: Registry, path: str) -> Target | None:
    segs = [s for s in path.split("/") if s]
    if len(segs) >= 3 and segs[0] == "api" and segs[1] == "v1":
        gv, rest = "v1", segs[2:]
    elif len(segs) >= 4 and segs[0] == "apis":
        gv, rest = f"{segs[1]}/{segs[2]}", segs[3:]
    else:
        return None
    plurals = registry.kinds_by_plural(gv)
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
    return Target(kind=kind, namespace=namespace, name=name, subresource=sub, group_version=gv)


def build_app(served: Served) -> web.Application:
    @web.middleware
    async def gate(request: web.Request, handler):
        await served.until_answering()
        if request.path not in OPEN_PATHS and \
                not served.authorized(request.headers.get("Authorization", "")):
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
    target = parse_path(served.registry, path)
    if target is None:
        raise ApiError(code=404, message="the server could not find the requested resource",
                       reason="NotFound")
    m = request.method
    if target.kind.read_only and m != "GET":
        raise _not_allowed(m)
    if target.name is None:
        if m == "GET":
            if request.query.get("watch", "").lower() in ("1", "true"):
                return await streams.watch(request, served=served, kind=target.kind,
                                           namespace=target.namespace, matcher=_matcher(request))
            return await _list(request, served, target)
        if m == "POST":
            return await _create(request, served, target)
        if m == "DELETE":
            return await _delete_collection(request, served, target)
    else:
        if m == "GET":
            return await _get(request, served, target)
        if m == "PUT":
            return await _update(request, served, target)
        if m == "PATCH":
            return await _patch(request, served, target)
        if m == "DELETE" and target.subresource is None:
            return await _delete(request, served, target)
    raise _not_allowed(m)


def _not_allowed(method: str) -> ApiError:
    return ApiError(code=405, message=f"the server does not allow this method on the requested "
                    f"resource ({method})", reason="MethodNotAllowed")


def _fixed(path: str, served: Served) -> web.Response | None:
    registry = served.registry
    if path in OPEN_PATHS:
        return web.Response(text="ok")
    if path == "/version":
        return respond(discovery.version())
    if path == "/api":
        return respond(discovery.core_versions(server=served.url))
    if path == "/apis":
        return respond(discovery.group_list(registry))
    if path == "/openapi/v3":
        return respond(openapi.index(registry))
    if path.startswith("/openapi/v3/"):
        doc = openapi.document_bytes(registry, path[len("/openapi/v3/"):])
        if doc is not None:
            return respond(doc)
    if path == "/openapi/v2":
        # Older kubectl (Debian's 1.20) validates against OpenAPI v2, in protobuf only. An
        # empty Document is a valid message; kubectl skips validation of kinds it lacks.
        return web.Response(body=b"", content_type=openapi.V2_PROTOBUF)
    if path.startswith("/openapi/"):
        raise ApiError(code=404, message="the server serves no such OpenAPI document")
    segs = path.strip("/").split("/")
    if segs == ["api", "v1"]:
        return respond(discovery.resource_list(registry, "v1"))
    if len(segs) == 2 and segs[0] == "apis":
        doc = discovery.group(registry, segs[1])
        return respond(doc) if doc else None
    if len(segs) == 3 and segs[0] == "apis":
        doc = discovery.resource_list(registry, f"{segs[1]}/{segs[2]}")
        return respond(doc) if doc else None
    return None


def _matcher(request: web.Request):
    return both(label_selector(request.query.get("labelSelector")),
                field_selector(request.query.get("fieldSelector")))


def _continue_after(token: str | None) -> tuple[tuple[str, str] | None, int | None]:
    if not token:
        return None, None
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
        return (doc["ns"], doc["name"]), int(doc["rv"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise ApiError(code=400, message="invalid continue token") from None


def _as_served(target: Target, data: bytes) -> bytes:
    """An object's JSON in the group/version it was asked in (an alias: same fields)."""
    if not target.group_version or target.group_version == target.kind.group_version:
        return data
    obj = json.loads(data)
    obj["apiVersion"] = target.group_version
    return dumps(obj)


def _list_body(target: Target, items: list[Stored], meta: dict) -> bytes:
    head = dumps({"kind": target.kind.list_kind,
                  "apiVersion": target.group_version or target.kind.api_version,
                  "metadata": meta})
    return head[:-1] + b',"items":[' + b",".join(_as_served(target, s.data) for s in items) \
        + b"]}"


async def _list(request: web.Request, served: Served, target: Target) -> web.Response:
    q = request.query
    try:
        limit = int(q.get("limit") or 0)
    except ValueError:
        raise ApiError(code=400, message=f"invalid limit {q.get('limit')!r}") from None
    after, first_rv = _continue_after(q.get("continue"))
    listing = await served.storage.list(target.kind, namespace=target.namespace,
                                        matcher=_matcher(request), after=after,
                                        limit=max(limit, 0), revision=first_rv)
    rv = str(listing.revision)
    if tables.wanted(request):
        return respond(tables.table(target.kind, [s.obj for s in listing.items],
                                    resource_version=rv))
    meta: dict = {"resourceVersion": rv}
    if listing.after is not None:
        meta["continue"] = base64.urlsafe_b64encode(
            dumps({"ns": listing.after[0], "name": listing.after[1], "rv": rv})).decode()
        meta["remainingItemCount"] = 0
    return respond(_list_body(target, listing.items, meta))


async def _require(served: Served, target: Target) -> Stored:
    kind = target.kind
    found = await served.storage.get(kind, namespace=target.namespace or "", name=target.name)
    if found is None:
        raise not_found(resource=kind.plural, name=target.name, group=kind.group)
    return found


async def _get(request: web.Request, served: Served, target: Target) -> web.Response:
    stored = await _require(served, target)
    if target.subresource == "scale":
        return respond(scale.scale_of(stored.obj))
    if tables.wanted(request):
        return respond(tables.table(target.kind, [stored.obj], resource_version=None))
    return respond(_as_served(target, stored.data))


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
            body.get("apiVersion") not in (None, *kind.served_as):
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
    body["apiVersion"] = kind.api_version  # stored in the kind's own group/version
    return body


def _no_dry_run(request: web.Request) -> None:
    if request.query.get("dryRun"):
        raise ApiError(code=400, message="dryRun is not supported by this server")


async def _admit(served: Served, kind: Kind, obj: dict, old: dict | None) -> None:
    if served.admit is not None:
        await served.admit(kind, obj, old)


async def _create(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    obj = _object_body(await _body(request), target, name=None)
    generate_name(obj)  # before admission, which checks the name
    await _admit(served, target.kind, obj, None)
    stored = await served.storage.create(target.kind, obj)
    return respond(_as_served(target, stored.data), code=201)


async def _store_update(served: Served, target: Target, obj: dict, *, old: Stored) -> Stored:
    if target.subresource is None:
        await _admit(served, target.kind, obj, old.obj)
    return await served.storage.update(target.kind, obj, subresource=target.subresource)


async def _update(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    body = await _body(request)
    stored = await _require(served, target)
    if target.subresource == "scale":
        obj = scale.scaled(stored.obj, body, name=target.name)
        return respond(scale.scale_of((await _store_update(served, target, obj,
                                                           old=stored)).obj))
    obj = _object_body(body, target, name=target.name)
    return respond(_as_served(target, (await _store_update(served, target, obj,
                                                           old=stored)).data))


async def _patch(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    body = await _body(request)
    ctype = request.headers.get("Content-Type", "")
    for attempt in range(PATCH_ATTEMPTS):
        stored = await _require(served, target)
        if target.subresource == "scale":
            patched = patch.apply(content_type=ctype, target=scale.scale_of(stored.obj),
                                  body=body)
            obj = scale.scaled(stored.obj, patched, name=target.name)
        else:
            patched = patch.apply(content_type=ctype, target=stored.obj, body=body,
                                  atomic_lists=target.kind.kind == "EndpointSlice")
            obj = _object_body(patched, target, name=target.name)
        sent_rv = obj["metadata"].get("resourceVersion")
        if sent_rv in (None, "") or sent_rv == stored.obj["metadata"]["resourceVersion"]:
            retry = sent_rv in (None, "") or _rv_in_patch(body) is None
            obj["metadata"]["resourceVersion"] = stored.obj["metadata"]["resourceVersion"]
        else:
            retry = False
        try:
            result = await _store_update(served, target, obj, old=stored)
        except ApiError as exc:
            if exc.code == 409 and retry and attempt + 1 < PATCH_ATTEMPTS:
                continue  # someone wrote in between: patch the newer object
            raise
        if target.subresource == "scale":
            return respond(scale.scale_of(result.obj))
        return respond(_as_served(target, result.data))
    raise AssertionError("unreachable")


def _rv_in_patch(body: object) -> str | None:
    """The resourceVersion a merge/strategic patch asks for (it then must not be retried)."""
    if isinstance(body, dict):
        return ((body.get("metadata") or {}).get("resourceVersion")) or None
    return None


def _delete_options(body: object) -> dict:
    return (body.get("preconditions") or {}) if isinstance(body, dict) else {}


async def _delete(request: web.Request, served: Served, target: Target) -> web.Response:
    _no_dry_run(request)
    pre = _delete_options(await _body(request))
    kind = target.kind
    gone = await served.storage.delete(kind, namespace=target.namespace or "",
                                       name=target.name, preconditions=pre)
    if kind.delete_returns_object:
        return respond(_as_served(target, gone.data))
    meta = gone.obj["metadata"]
    return respond(status(code=200, message="", reason="", details={
        "name": meta["name"], "group": kind.group, "kind": kind.plural,
        "uid": meta.get("uid")}))


async def _delete_collection(request: web.Request, served: Served,
                             target: Target) -> web.Response:
    _no_dry_run(request)
    listing = await served.storage.list(target.kind, namespace=target.namespace,
                                        matcher=_matcher(request))
    gone = []
    for s in listing.items:
        meta = s.obj["metadata"]
        try:
            gone.append(await served.storage.delete(
                target.kind, namespace=meta.get("namespace", ""), name=meta["name"]))
        except ApiError as exc:
            if exc.code != 404:
                raise
    return respond(_list_body(target, gone,
                              {"resourceVersion": str(listing.revision)}))

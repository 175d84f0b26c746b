"""PATCH bodies: JSON merge patch, strategic merge patch (the parts our kinds use), JSON patch."""

from __future__ import annotations

import copy

from fed_dns.apiserver.status import ApiError

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"

# Lists merged element by element under strategic merge, by field name -> merge key.
# "ports" depends on where it is: Service ports merge on "port", container ports on
# "containerPort". EndpointSlice lists are atomic (replaced whole), as in Kubernetes.
_MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "ephemeralContainers": "name",
    "env": "name", "volumes": "name", "volumeMounts": "mountPath", "imagePullSecrets": "name",
    "conditions": "type",
}
_PRIMITIVE_MERGE = {"finalizers"}


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386: maps merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _merge_key(field: str, items: list, *, atomic: bool) -> str | None:
    if atomic:
        return None
    if field == "ports":
        sample = next((i for i in items if isinstance(i, dict)), None)
        if sample is None:
            return None
        return "containerPort" if "containerPort" in sample else "port"
    return _MERGE_KEYS.get(field)


def _merge_list(field: str, current: list, patch: list, *, atomic: bool) -> list:
    if field in _PRIMITIVE_MERGE and not atomic:
        return current + [v for v in patch if v not in current]
    key = _merge_key(field, current + patch, atomic=atomic)
    if key is None or any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and p.get("$patch"))]
    out = [copy.deepcopy(c) for c in current]
    for item in patch:
        if not isinstance(item, dict):
            continue
        idx = next((i for i, c in enumerate(out)
                    if isinstance(c, dict) and c.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
        elif idx is None:
            out.append(_strip(item))
        else:
            out[idx] = _strategic(out[idx], item, atomic=atomic)
    return out


def _strip(value: object) -> object:
    """A patch value with its directives removed (for values that are added whole)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _strategic(target: dict, patch: dict, *, atomic: bool) -> dict:
    if patch.get("$patch") == "replace":
        return _strip(patch)
    if patch.get("$patch") == "delete":
        return {}
    out = dict(target)
    orders: dict[str, list] = {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
        elif key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            out[field] = [v for v in out.get(field) or [] if v not in value]
        elif key.startswith("$"):
            continue
        elif value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _strategic(out[key], value, atomic=atomic)
        elif isinstance(value, list) and isinstance(out.get(key), list):
            out[key] = _merge_list(key, out[key], value, atomic=atomic)
        else:
            out[key] = _strip(value)
    for field, order in orders.items():
        out[field] = _reorder(out.get(field) or [], order)
    if "$retainKeys" in patch:
        keep = set(patch["$retainKeys"])
        out = {k: v for k, v in out.items() if k in keep}
    return out


def _reorder(items: list, order: list) -> list:
    if not order or not all(isinstance(o, dict) for o in order):
        return items
    key = next(iter(order[0]), None)
    rank = {o.get(key): i for i, o in enumerate(order)}
    return sorted(items, key=lambda i: rank.get(i.get(key) if isinstance(i, dict) else None,
                                                 len(rank)))


def strategic_merge_patch(target: dict, patch: dict, *, atomic_lists: bool = False) -> dict:
    """Strategic merge: merge patch plus merge-key lists and the `$patch`/`$setElementOrder`,
    `$deleteFromPrimitiveList`, `$retainKeys` directives kubectl sends."""
    return _strategic(target, patch, atomic=atomic_lists)


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(code=422, message=f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: object, parts: list[str]) -> tuple[object, str]:
    cur = doc
    for part in parts[:-1]:
        try:
            cur = cur[int(part)] if isinstance(cur, list) else cur[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise ApiError(code=422, message=f"path not found: /{'/'.join(parts)}") from None
    return cur, parts[-1]


def _get(doc: object, parts: list[str]) -> object:
    if not parts:
        return doc
    parent, last = _parent(doc, parts)
    try:
        return parent[int(last)] if isinstance(parent, list) else parent[last]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(code=422, message=f"path not found: /{'/'.join(parts)}") from None


def _remove(doc: object, parts: list[str]) -> object:
    parent, last = _parent(doc, parts)
    _get(doc, parts)
    return parent.pop(int(last)) if isinstance(parent, list) else parent.pop(last)


def _add(doc: object, parts: list[str], value: object) -> object:
    if not parts:
        return value
    parent, last = _parent(doc, parts)
    if isinstance(parent, list):
        idx = len(parent) if last == "-" else int(last)
        if not 0 <= idx <= len(parent):
            raise ApiError(code=422, message=f"index out of range: {last}")
        parent.insert(idx, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise ApiError(code=422, message=f"cannot add at /{'/'.join(parts)}")
    return doc


def json_patch(target: dict, ops: list) -> dict:
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise ApiError(code=400, message="a JSON patch must be a list of operations")
    doc: object = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(code=400, message=f"invalid JSON patch operation: {op!r}")
        kind, parts = op["op"], _pointer(op["path"])
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            _remove(doc, parts)
        elif kind == "replace":
            _get(doc, parts)
            if parts:
                _remove(doc, parts)
            doc = _add(doc, parts, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = _remove(doc, src) if kind == "move" else copy.deepcopy(_get(doc, src))
            doc = _add(doc, parts, value)
        elif kind == "test":
            if _get(doc, parts) != op.get("value"):
                raise ApiError(code=422, message=f"test failed at {op['path']}")
        else:
            raise ApiError(code=400, message=f"unknown JSON patch op {kind!r}")
    if not isinstance(doc, dict):
        raise ApiError(code=422, message="the patched object is not an object")
    return doc


def apply(*, content_type: str, target: dict, body: object, atomic_lists: bool = False) -> dict:
    """Patch `target` with `body` according to the request's Content-Type."""
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == JSON_PATCH:
        return json_patch(target, body)  # type: ignore[arg-type]
    if not isinstance(body, dict):
        raise ApiError(code=400, message="the patch body must be a JSON object")
    if ctype == MERGE:
        return merge_patch(target, body)  # type: ignore[return-value]
    if ctype == STRATEGIC:
        return strategic_merge_patch(target, body, atomic_lists=atomic_lists)
    raise ApiError(code=415, message=f"the server does not support patch type {ctype!r}")

"""Kubernetes `Status` objects and the error that carries one through the simulator."""

from __future__ import annotations

REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
}


def status(*, code: int, message: str, reason: str | None = None,
           details: dict | None = None) -> dict:
    """A meta/v1 Status: kind/apiVersion/status/reason/code/message (as the API server sends)."""
    out = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason if reason is not None else REASONS.get(code, ""),
        "code": code,
    }
    if details:
        out["details"] = details
    return out


class ApiError(Exception):
    """Raised by the store and the handlers; turned into a Status response."""

    def __init__(self, *, code: int, message: str, reason: str | None = None,
                 details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status(code=code, message=message, reason=reason, details=details)


def not_found(*, resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(code=404, message=f'{qualified} "{name}" not found',
                    details={"name": name, "group": group, "kind": resource})


def already_exists(*, resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(code=409, reason="AlreadyExists", message=f'{qualified} "{name}" already exists',
                    details={"name": name, "group": group, "kind": resource})


def conflict(*, resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(code=409, reason="Conflict",
                    message=(f'Operation cannot be fulfilled on {qualified} "{name}": the object '
                             "has been modified; please apply your changes to the latest version "
                             "and try again"),
                    details={"name": name, "group": group, "kind": resource})


def invalid(*, kind: str, name: str, message: str) -> ApiError:
    return ApiError(code=422, message=f'{kind} "{name}" is invalid: {message}',
                    details={"name": name, "kind": kind})


def expired(*, rv: int, oldest: int) -> ApiError:
    return ApiError(code=410, reason="Expired",
                    message=f"too old resource version: {rv} ({oldest})")


def continue_expired() -> ApiError:
    """A continue token whose revision was compacted away (kube-apiserver's words)."""
    return ApiError(code=410, reason="Expired", message=(
        "The provided continue parameter is too old to display a consistent list result. "
        "You can start a new list without the continue parameter."))

"""422 Invalid as kube-apiserver answers it: one cause per field, a message naming each.

    errors = FieldErrors()
    errors.invalid("spec.replicas", -1, "must be greater than or equal to 0")
    errors.raise_for(kind, name)   # ApiError 422 when any
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from fed_dns.apiserver.kinds import Kind
from fed_dns.apiserver.status import ApiError

_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _shown(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else \
        json.dumps(value, separators=(",", ":")) if isinstance(value, dict | list) else \
        str(value).lower() if isinstance(value, bool) else str(value)


@dataclass
class FieldErrors:
    causes: list[dict] = field(default_factory=list)

    def add(self, path: str, reason: str, message: str) -> None:
        self.causes.append({"reason": reason, "message": message, "field": path})

    def invalid(self, path: str, value: object, detail: str) -> None:
        self.add(path, "FieldValueInvalid", f"Invalid value: {_shown(value)}: {detail}")

    def required(self, path: str, detail: str = "") -> None:
        self.add(path, "FieldValueRequired", "Required value" + (f": {detail}" if detail else ""))

    def unsupported(self, path: str, value: object, allowed: tuple[str, ...]) -> None:
        supported = ", ".join(f'"{a}"' for a in allowed)
        self.add(path, "FieldValueNotSupported",
                 f"Unsupported value: {_shown(value)}: supported values: {supported}")

    def not_found(self, path: str, value: object, detail: str = "") -> None:
        self.add(path, "FieldValueNotFound",
                 f"Not found: {_shown(value)}" + (f": {detail}" if detail else ""))

    def raise_for(self, kind: Kind, name: str) -> None:
        if not self.causes:
            return
        parts = [f"{c['field']}: {c['message']}" for c in self.causes]
        text = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        qualified = f"{kind.kind}.{kind.group}" if kind.group else kind.kind
        raise ApiError(code=422, reason="Invalid", message=f'{qualified} "{name}" is invalid: {text}',
                       details={"name": name, "group": kind.group, "kind": kind.kind,
                                "causes": self.causes})


def dns_label(errors: FieldErrors, path: str, value: str) -> None:
    if len(value) > 63 or not _LABEL.match(value):
        errors.invalid(path, value, "a lowercase RFC 1123 label must consist of lower case "
                       "alphanumeric characters or '-', and must start and end with an "
                       "alphanumeric character")


def dns1035_label(errors: FieldErrors, path: str, value: str) -> None:
    """A Service's name: a DNS label that starts with a letter."""
    if len(value) > 63 or not _LABEL_1035.match(value):
        errors.invalid(path, value, "a DNS-1035 label must consist of lower case alphanumeric "
                       "characters or '-', start with an alphabetic character, and end with "
                       "an alphanumeric character")


def dns_subdomain(errors: FieldErrors, path: str, value: str) -> None:
    if len(value) > 253 or not _SUBDOMAIN.match(value):
        errors.invalid(path, value, "a lowercase RFC 1123 subdomain must consist of lower case "
                       "alphanumeric characters, '-' or '.', and must start and end with an "
                       "alphanumeric character")


def non_negative_int(errors: FieldErrors, path: str, value: object, *,
                     required: bool = False) -> bool:
    """Whether `value` is an int >= 0 (None passes unless `required`); records what is not."""
    if value is None:
        if required:
            errors.required(path)
        return not required
    if not isinstance(value, int) or isinstance(value, bool):
        errors.invalid(path, value, "must be an integer")
        return False
    if value < 0:
        errors.invalid(path, value, "must be greater than or equal to 0")
        return False
    return True

"""Config problems: file, field path, what was expected. Values of secret fields are never shown."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from fed_dns.config.values import shown

SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "key_data", "private")


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One thing wrong with a config: `file[:line]: path: message`."""

    file: str
    path: str = ""
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """A config (or the kubeconfig it defaults to) that cannot be used; one line per problem."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


def is_secret(path: str) -> bool:
    return any(word in path.lower() for word in SECRET_WORDS)


def from_validation(error: ValidationError, *, model: type[BaseModel], source: str) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = tuple(item["loc"])
        path = render_path(loc, model=model)
        got = None if is_secret(path) or item["type"] == "extra_forbidden" else shown(item["input"])
        problems.append(Problem(file=source, path=path, message=_message(item, got=got, loc=loc, model=model)))
    return problems


def _message(item: dict, *, got: str | None, loc: tuple, model: type[BaseModel]) -> str:
    kind, ctx = item["type"], item.get("ctx") or {}
    if kind == "fed_dns":
        return item["msg"]
    if kind == "extra_forbidden":
        owner = _walk(loc[:-1], model=model)
        known = ", ".join(owner[1].model_fields) if owner and owner[0] == "model" else ""
        return f"unknown key (expected one of: {known})" if known else "unknown key"
    if kind == "invalid_key":
        return "expected a key that is a string"
    if kind == "missing":
        return "required key is missing"
    expected = {
        "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
        "bool_type": "true or false", "bool_parsing": "true or false",
        "string_type": "a string", "string_too_short": "a non-empty string",
        "model_type": "a mapping", "model_attributes_type": "a mapping", "dict_type": "a mapping",
        "list_type": "a list", "tuple_type": "a list", "float_type": "a number",
        "literal_error": f"one of {ctx.get('expected')}", "enum": f"one of {ctx.get('expected')}",
        "greater_than_equal": f"a number >= {ctx.get('ge')}", "greater_than": f"a number > {ctx.get('gt')}",
        "less_than_equal": f"a number <= {ctx.get('le')}", "less_than": f"a number < {ctx.get('lt')}",
    }.get(kind)
    if expected is None:
        text = item["msg"]
        expected = text[0].lower() + text[1:]
    hint = (" (YAML reads unquoted yes/no/on/off/true/false as booleans: quote it)"
            if kind == "string_type" and isinstance(item["input"], bool) else "")
    return f"expected {expected}, got {got}{hint}" if got is not None else f"expected {expected}"


def render_path(loc: Sequence, *, model: type[BaseModel]) -> str:
    """('clusters', 1, 'name') -> 'clusters[1].name'; mapping keys in brackets."""
    out = ""
    for i, part in enumerate(loc):
        if part == "[key]":
            continue
        if isinstance(part, int) or _walk(loc[:i], model=model) == _MAPPING:
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_MAPPING = ("mapping", None)


def _walk(loc: Sequence, *, model: type[BaseModel]) -> tuple[str, object] | None:
    """What stands at `loc`: ("model", cls), ("list", element), ("mapping", None), or None."""
    current = ("model", model)
    for part in loc:
        if current is None or part == "[key]":
            return None
        kind, inner = current
        if kind == "model" and isinstance(part, str):
            field = inner.model_fields.get(part)
            current = _shape(field.annotation) if field else None
        elif kind == "list" and isinstance(part, int):
            current = inner
        else:
            current = None
    return current


def _shape(annotation: object) -> tuple[str, object] | None:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _shape(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found = [_shape(a) for a in typing.get_args(annotation) if a is not type(None)]
        return next((f for f in found if f is not None), None)
    if origin is tuple:
        return ("list", _shape(typing.get_args(annotation)[0]))
    if origin is dict:
        return _MAPPING
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ("model", annotation)
    return None

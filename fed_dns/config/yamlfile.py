"""Reading a YAML file into plain data, with problems that never quote the file's lines.

PyYAML's own error text carries a snippet of the offending line, which may hold a password or
a token (a kubeconfig does): only the problem, the line and the column are reported here.
Duplicate keys, which PyYAML silently lets the last one win, are problems too.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from fed_dns.config.errors import ConfigError, Problem


class _DuplicateKey(yaml.MarkedYAMLError):
    pass


class _StrictLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key in seen:
                raise _DuplicateKey(problem=f"duplicate key {key!r} (first at line {seen[key]})",
                                    problem_mark=key_node.start_mark)
            if isinstance(key, str):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def read(path: str | os.PathLike[str]) -> Any:
    """The file's single YAML document as plain data; ConfigError when it cannot be."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            raw = f.read()
    except OSError as exc:
        reason = exc.strerror or exc.__class__.__name__
        raise ConfigError([Problem(file=source, message=f"cannot read the file: {reason}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(file=source, message=f"expected UTF-8 text (bad byte at offset {exc.start})")]) from None
    return loads(text, source=source)


def loads(text: str, *, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = "" if isinstance(exc, _DuplicateKey) else "YAML syntax error: "
        context = f"{exc.context}, " if exc.context and not isinstance(exc, _DuplicateKey) else ""
        column = f" (column {mark.column + 1})" if mark is not None and what else ""
        raise ConfigError([Problem(file=source, line=mark.line + 1 if mark is not None else None,
                                   message=f"{what}{context}{exc.problem}{column}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(file=source, message=f"YAML error: {exc.__class__.__name__}")]) from None

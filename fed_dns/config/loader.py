"""load(path) and parse(data): a Config, or a ConfigError listing every problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from fed_dns.config.checks import cross_checks
from fed_dns.config.errors import ConfigError, Problem, from_validation
from fed_dns.config.schema import Config
from fed_dns.config.values import shown
from fed_dns.config.yamlfile import read


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a YAML config file. An empty file is every default."""
    return parse(read(path), source=os.fspath(path))


def parse(data: Any, *, source: str = "<config>") -> Config:
    """Validate already-parsed YAML data; `source` names it in problems."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([Problem(file=source, message=(
            f"expected a mapping of config keys at the top level (zone: ..., clusters: ...), got {shown(data)}"))])
    config, problems = None, []
    try:
        config = Config.model_validate(dict(data))
    except ValidationError as exc:
        problems = from_validation(exc, model=Config, source=source)
    problems += cross_checks(data, source=source)
    if problems or config is None:
        raise ConfigError(problems)
    return config

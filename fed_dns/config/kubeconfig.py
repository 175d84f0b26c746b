"""The default members: every context of the current kubeconfig (read as YAML, nothing more).

KUBECONFIG may list several files (os.pathsep); as kubectl does, missing ones are skipped and
the first file to name a context wins. With one file, each member points at it; with several,
members leave `kubeconfig` unset so the client merges the same KUBECONFIG list.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from fed_dns.config.errors import ConfigError, Problem
from fed_dns.config.values import LABEL_TEXT, is_label, shown
from fed_dns.config.yamlfile import read
from fed_dns.model import ClusterSpec

HINT = "with no clusters in the config, the members are the contexts of the current kubeconfig"


def default_paths(*, environ: Mapping[str, str]) -> list[str]:
    listed = [p for p in environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    if listed:
        return [os.path.expanduser(p) for p in listed]
    home = environ.get("HOME") or os.path.expanduser("~")
    return [os.path.join(home, ".kube", "config")]


def context_specs(*, environ: Mapping[str, str]) -> tuple[ClusterSpec, ...]:
    paths = default_paths(environ=environ)
    found = [p for p in paths if os.path.isfile(p)]
    if not found:
        raise ConfigError([Problem(file=os.pathsep.join(paths), message=f"no such file ({HINT}): "
                                   "set KUBECONFIG or list the clusters in the config")])
    names: dict[str, None] = {}
    problems: list[Problem] = []
    for path in found:
        for name in _context_names(path, problems=problems):
            names.setdefault(name, None)
    if not problems and not names:
        problems.append(Problem(file=os.pathsep.join(found), message=f"no contexts ({HINT})"))
    if problems:
        raise ConfigError(problems)
    kubeconfig = found[0] if len(found) == 1 else None
    return tuple(ClusterSpec(name=n, kubeconfig=kubeconfig, context=n) for n in names)


def _context_names(path: str, *, problems: list[Problem]) -> list[str]:
    try:
        data = read(path)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return []
    if data is None:
        return []
    if not isinstance(data, dict):
        problems.append(Problem(file=path, message=f"expected a kubeconfig (a mapping), got {shown(data)}"))
        return []
    contexts = data.get("contexts") or []
    if not isinstance(contexts, list):
        problems.append(Problem(file=path, path="contexts", message=f"expected a list, got {shown(contexts)}"))
        return []
    names = []
    for i, context in enumerate(contexts):
        name = context.get("name") if isinstance(context, dict) else None
        if not isinstance(name, str):
            problems.append(Problem(file=path, path=f"contexts[{i}].name", message="expected a context name"))
        elif not is_label(name):
            problems.append(Problem(
                file=path, path=f"contexts[{i}].name",
                message=f"expected {LABEL_TEXT} to use as a cluster name, got {shown(name)} ({HINT}; "
                        "list the clusters in the config to name them: {name: c1, context: ...})"))
        else:
            names.append(name)
    return names

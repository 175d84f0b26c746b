"""A v1 Service at admission, as kube-apiserver defaults and checks it (the basics): type
ClusterIP, protocol TCP and targetPort = port when not given; then ports required (unless
ExternalName or headless), each with a port of 1-65535, a protocol of TCP, UDP or SCTP, a
targetPort number or IANA name, a DNS-label name (required and unique when there are
several), no nodePort on a ClusterIP Service; a type of ClusterIP, NodePort, LoadBalancer or
ExternalName (with its externalName); a selector of label keys to label values.

Nothing is allocated: the federation API holds no cluster network; each member allocates its
own clusterIP and nodePorts when the Service follows a workload there.
"""

from __future__ import annotations

import re

from fed_dns.apiserver.invalid import FieldErrors, dns_label, dns_subdomain

TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")  # sorted, as kube lists them
PROTOCOLS = ("SCTP", "TCP", "UDP")
PORT_RANGE = "must be between 1 and 65535, inclusive"

_IANA_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def defaults(obj: dict) -> None:
    """What kube-apiserver fills in before validating (in place; wrong types left to
    `validate`)."""
    spec = obj.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    spec.setdefault("type", "ClusterIP")
    if spec["type"] != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
    for port in spec.get("ports") if isinstance(spec.get("ports"), list) else ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if "port" in port and port.get("targetPort") in (None, 0, ""):
                port["targetPort"] = port["port"]


def _port_number(errors: FieldErrors, path: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        errors.invalid(path, value, PORT_RANGE)


def _target_port(errors: FieldErrors, path: str, value: object) -> None:
    if isinstance(value, str) and not value.isdigit():
        problems = [
            *(["must be no more than 15 characters"] if len(value) > 15 else []),
            *(["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]
              if not re.fullmatch(r"[-a-z0-9]+", value) else []),
            *(["must contain at least one letter (a-z)"]
              if not re.search(r"[a-z]", value) else []),
            *(["must not contain consecutive hyphens"] if "--" in value else []),
            *(["must not begin or end with a hyphen"]
              if value.startswith("-") or value.endswith("-") else []),
        ]
        for problem in problems:
            errors.invalid(path, value, problem)
        return
    _port_number(errors, path, int(value) if isinstance(value, str) else value)


def _ports(errors: FieldErrors, ports: list, *, kind: str) -> None:
    names: set[str] = set()
    for i, port in enumerate(ports):
        at = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            errors.invalid(at, port, "must be an object")
            continue
        name = port.get("name")
        if not name and len(ports) > 1:
            errors.required(f"{at}.name")
        elif name:
            if not isinstance(name, str):
                errors.invalid(f"{at}.name", name, "must be a string")
            else:
                dns_label(errors, f"{at}.name", name)
                if name in names:
                    errors.add(f"{at}.name", "FieldValueDuplicate", f'Duplicate value: "{name}"')
                names.add(name)
        _port_number(errors, f"{at}.port", port.get("port"))
        protocol = port.get("protocol")
        if protocol not in PROTOCOLS:
            errors.unsupported(f"{at}.protocol", protocol, PROTOCOLS)
        if "targetPort" in port:
            _target_port(errors, f"{at}.targetPort", port["targetPort"])
        if kind == "ClusterIP" and port.get("nodePort"):
            errors.add(f"{at}.nodePort", "FieldValueForbidden",
                       "Forbidden: may not be used when `type` is 'ClusterIP'")


def _selector(errors: FieldErrors, selector: object) -> None:
    if selector is None:
        return
    if not isinstance(selector, dict):
        errors.invalid("spec.selector", selector, "must be a map of label keys to values")
        return
    for key, value in selector.items():
        prefix, _, name = key.rpartition("/")
        if not name or len(name) > 63 or not _NAME_PART.match(name) or \
                (prefix and (len(prefix) > 253 or not _PREFIX.match(prefix))) or \
                key.count("/") > 1:
            errors.invalid("spec.selector", key, "name part must consist of alphanumeric "
                           "characters, '-', '_' or '.', and must start and end with an "
                           "alphanumeric character (an optional DNS subdomain prefix and '/')")
        if not isinstance(value, str):
            errors.invalid("spec.selector", value, "must be a string")
        elif len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.invalid("spec.selector", value, "a valid label must be an empty string or "
                           "consist of alphanumeric characters, '-', '_' or '.', and must "
                           "start and end with an alphanumeric character")


def validate(errors: FieldErrors, obj: dict) -> None:
    """Record what kube-apiserver refuses in a (defaulted) Service."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        errors.invalid("spec", spec, "must be an object")
        return
    kind = spec.get("type")
    if kind not in TYPES:
        errors.unsupported("spec.type", kind, TYPES)
    ports = spec.get("ports")
    if ports is not None and not isinstance(ports, list):
        errors.invalid("spec.ports", ports, "must be a list")
        ports = []
    headless = spec.get("clusterIP") == "None"
    if not ports and not headless and kind != "ExternalName":
        errors.required("spec.ports")
    _ports(errors, ports or [], kind=kind)
    if kind == "ExternalName":
        external = spec.get("externalName")
        if not external:
            errors.required("spec.externalName")
        elif not isinstance(external, str):
            errors.invalid("spec.externalName", external, "must be a string")
        else:
            dns_subdomain(errors, "spec.externalName", external)
    _selector(errors, spec.get("selector"))

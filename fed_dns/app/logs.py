"""Structured logging, one line per event, with credentials masked (operations.md, Logging).

    logs.setup(fmt="json", level="info")
    log.info("cluster ready", extra={"cluster": "c1"})
    -> {"ts": "2024-05-01T12:00:00.123Z", "level": "info", "logger": "fed_dns.app", "msg": "cluster ready", "cluster": "c1"}

`RedactFilter` (installed on the handler, so it sees records of every logger) masks bearer
tokens, `password=...` / `token: ...` pairs, credentials in URLs, JWTs and PEM blocks in the
message, the extra fields and the traceback. `redact(text)` is the same masking for any string.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

MASK = "***"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
_SECRET_NAME = r"(?:password|passwd|pwd|secret|token|access[_-]?token|refresh[_-]?token|id[_-]?token|api[_-]?key" \
               r"|client[_-]?key(?:[_-]?data)?|private[_-]?key|authorization|credentials?)"
_PATTERNS = [
    # PEM blocks, whole (or cut off at the end of the text)
    (re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.*?(?:-----END \1-----|\Z)", re.S), r"-----BEGIN \1----- *** -----END \1-----"),
    # Authorization: Bearer xyz / Basic xyz
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.I), rf"\1 {MASK}"),
    # JSON-ish "password": "x"
    (re.compile(rf"""(["']{_SECRET_NAME}["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2""", re.I), rf"\1\2{MASK}\2"),
    # password=x, token: x, client-key-data: x (unquoted up to a separator)
    (re.compile(rf"""(\b{_SECRET_NAME}\b["']?\s*[:=]\s*)(?!{re.escape(MASK)}|(?:Bearer|Basic)\s)"""
                rf"""(?:(["'])(?:(?!\2).)*\2|[^\s,;&"'}}\]]+)""", re.I),
     lambda m: f"{m.group(1)}{m.group(2) or ''}{MASK}{m.group(2) or ''}"),
    # scheme://user:password@host
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s/@]+@", re.I), rf"\1{MASK}@"),
    # JWTs (service-account tokens)
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
]
_SECRET_KEY = re.compile(rf"^{_SECRET_NAME}$|{_SECRET_NAME}$", re.I)
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """`text` with every credential it recognisably carries replaced by ***."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any, *, key: str = "") -> Any:
    """A log field's value, masked whole under a secret-looking key, else redacted inside."""
    if key and _SECRET_KEY.search(key) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact_value(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS and not k.startswith("_")}


class RedactFilter(logging.Filter):
    """Masks credentials in a record's message, extra fields and traceback, in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        for key, value in extra_fields(record).items():
            setattr(record, key, redact_value(value, key=key))
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _tail(record: logging.LogRecord) -> dict[str, Any]:
    tail = extra_fields(record)
    if record.exc_text:
        tail["exc"] = record.exc_text
    if record.stack_info:
        tail["stack"] = record.stack_info
    return tail


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, then the extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": _timestamp(record), "level": record.levelname.lower(), "logger": record.name,
                "msg": record.getMessage()}
        for key, value in _tail(record).items():
            line.setdefault(key, value)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`ts LEVEL logger: msg key=value ...` on one line; values with spaces are quoted."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage().replace("\r", "\\r").replace("\n", "\\n")
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in _tail(record).items())
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {msg}"
        return f"{line} {fields}" if fields else line


def _text_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    if text and not any(c.isspace() or c in "\"=" for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def setup(*, fmt: str = "text", level: str = "info", stream: TextIO | None = None) -> logging.Handler:
    """Route every logger to one stderr handler (or `stream`) in `fmt`; replaces an earlier setup."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be 'text' or 'json', got {fmt!r}")
    numeric = LEVELS.get(level.lower())
    if numeric is None:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactFilter())
    handler.set_name("fed-dns")
    handler.fed_dns_settings = (fmt, level.lower())  # for processes started later (current())
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "fed-dns"]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric)
    # urllib3 (under the kubernetes client) logs every connection retry of a dead member;
    # the watcher reports the broken stream once per attempt itself.
    logging.getLogger("urllib3").setLevel(max(numeric, logging.ERROR))
    logging.captureWarnings(True)
    return handler


def current() -> tuple[str, str]:
    """The (format, level) of the last setup, for a child process to log alike."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == "fed-dns":
            return getattr(handler, "fed_dns_settings", ("text", "info"))
    return ("text", "info")

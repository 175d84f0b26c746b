"""Structured log lines, and credentials masked wherever they appear."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from fed_dns.app import logs

JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJlLXZhbHVl"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn\n-----END RSA PRIVATE KEY-----"


@pytest.fixture
def capture() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    handler = logs.setup(fmt="json", level="debug", stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(saved[0])
    assert root.handlers == saved[1]


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(("text", "secret", "kept"), [
    ("Authorization: Bearer abc.DEF-123_xyz", "abc.DEF", "Authorization: Bearer ***"),
    ("header bearer s3cr3t-t0ken", "s3cr3t", "bearer ***"),
    ("Basic dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy", "Basic ***"),
    ("login password=hunter2 ok", "hunter2", "password=*** ok"),
    ("PASSWORD = 'hunter2 x'", "hunter2", "PASSWORD = '***'"),
    ("token: abcdef123, next", "abcdef123", "token: ***, next"),
    ("client-key-data: LS0tLS1CRUdJTiBSU0E=", "LS0tLS1", "client-key-data: ***"),
    ("client_key=/k.pem&x=1", "/k.pem", "client_key=***&x=1"),
    ('{"password": "hun \\" ter2", "user": "u"}', "ter2", '{"password": "***", "user": "u"}'),
    ("{'token': 'zzz999'}", "zzz999", "{'token': '***'}"),
    ("id-token=abc123", "abc123", "id-token=***"),
    ("api_key: k-123", "k-123", "api_key: ***"),
    ("secret=shh!", "shh", "secret=***"),
    (f"user {JWT} said", "eyJzdWIi", "user *** said"),
    (f"cert {PEM} end", "MIIEow", "-----BEGIN RSA PRIVATE KEY----- *** -----END RSA PRIVATE KEY----- end"),
    ("cut -----BEGIN PRIVATE KEY-----\nMIIabc", "MIIabc", "cut -----BEGIN PRIVATE KEY----- ***"),
    ("dial https://root:hunter2@etcd:2379/v3", "hunter2", "https://root:***@etcd:2379/v3"),
])
def test_redact(text: str, secret: str, kept: str) -> None:
    out = logs.redact(text)
    assert secret not in out
    assert kept in out


@pytest.mark.parametrize("text", [
    "cluster c1 ready after 3 probes", "GET /readyz 200", "key /skydns/com/example/fed/ns/svc",
    "tokens_total=5 passwords are never logged", "http://127.0.0.1:2379",
])
def test_redact_leaves_plain_text(text: str) -> None:
    assert logs.redact(text) == text


def test_json_line_fields(capture: io.StringIO) -> None:
    logging.getLogger("fed_dns.test").info("cluster %s ready", "c1", extra={"cluster": "c1", "n": 3})
    (line,) = lines(capture)
    assert list(line)[:4] == ["ts", "level", "logger", "msg"]
    assert line["ts"].endswith("Z") and "T" in line["ts"]
    assert {k: line[k] for k in ("level", "logger", "msg", "cluster", "n")} == {
        "level": "info", "logger": "fed_dns.test", "msg": "cluster c1 ready", "cluster": "c1", "n": 3}


def test_credentials_masked_in_message_args_fields_and_traceback(capture: io.StringIO) -> None:
    log = logging.getLogger("fed_dns.deep.child")
    log.warning("connecting with %s", "password=hunter2",
                extra={"password": "hunter2", "auth": {"token": "hunter2"}, "headers": ["Bearer hunter2"],
                       "kubeconfig": f"users: [{{user: {{token: {JWT}}}}}]", "client_key": PEM})
    try:
        raise RuntimeError("login failed for https://root:hunter2@etcd:2379")
    except RuntimeError:
        log.exception("etcd down, token=hunter2")
    text = capture.getvalue()
    assert "hunter2" not in text and JWT not in text and "MIIEow" not in text
    first, second = lines(capture)
    assert first["password"] == "***" and first["auth"] == {"token": "***"} and first["client_key"] == "***"
    assert first["msg"] == "connecting with password=***"
    assert second["msg"] == "etcd down, token=***"
    assert "RuntimeError: login failed for https://root:***@etcd:2379" in second["exc"]


def test_text_format_one_line_per_event() -> None:
    stream = io.StringIO()
    handler = logs.setup(fmt="text", level="info", stream=stream)
    try:
        log = logging.getLogger("fed_dns.text")
        log.info("two\nlines", extra={"cluster": "c1", "why": "a b", "token": "hunter2"})
        log.debug("not shown")
        try:
            raise ValueError("bad")
        except ValueError:
            log.error("failed", exc_info=True)
    finally:
        logging.getLogger().removeHandler(handler)
    out = stream.getvalue().splitlines()
    assert len(out) == 2
    assert out[0].endswith(" INFO    fed_dns.text: two\\nlines cluster=c1 why=\"a b\" token=***")
    assert " ERROR   fed_dns.text: failed exc=\"Traceback" in out[1] and "ValueError: bad" in out[1]


def test_setup_replaces_itself_and_checks_arguments() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    first = logs.setup(fmt="text", level="warning", stream=io.StringIO())
    second = logs.setup(fmt="json", level="ERROR", stream=io.StringIO())
    try:
        assert first not in root.handlers and second in root.handlers
        assert root.level == logging.ERROR
    finally:
        root.removeHandler(second)
    assert root.handlers == before
    with pytest.raises(ValueError):
        logs.setup(fmt="xml", level="info")
    with pytest.raises(ValueError):
        logs.setup(fmt="json", level="loud")

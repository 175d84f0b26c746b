"""The diff the daemon sends its DNS worker processes (pure)."""

import pytest

from fed_dns.app.workers import diff


@pytest.mark.parametrize(("old", "new", "puts", "deletes"), [
    ({}, {}, {}, []),
    ({}, {"a": b"1"}, {"a": b"1"}, []),
    ({"a": b"1"}, {"a": b"1"}, {}, []),
    ({"a": b"1"}, {"a": b"2"}, {"a": b"2"}, []),
    ({"a": b"1", "b": b"2"}, {"b": b"2"}, {}, ["a"]),
    ({"a": b"1"}, {"b": b"1"}, {"b": b"1"}, ["a"]),
], ids=["empty", "add", "same", "change", "delete", "rename"])
def test_diff_table(old, new, puts, deletes):
    got_puts, got_deletes = diff(old=old, new=new)
    assert got_puts == puts and got_deletes == deletes
    applied = {k: v for k, v in old.items() if k not in got_deletes} | got_puts
    assert applied == new

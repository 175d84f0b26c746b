"""Paginated prefix reads against a real etcd: pages, one revision, compaction mid-read,
pages too large for gRPC's receive limit."""

from __future__ import annotations

from dataclasses import dataclass

import aetcd
import pytest

from fed_dns.etcd import ranges
from fed_dns.etcd.writer import Writer
from fed_dns.model import Changes as ModelChanges


async def put_all(client, items: dict[str, bytes]) -> int:
    revision = 0
    for key, value in items.items():
        revision = (await client.put(key.encode(), value)).header.revision
    return revision


@pytest.mark.parametrize(("key", "following"), [
    (b"/z/a", b"/z/a\x00"),
    (b"/z/a\x00", b"/z/a\x00\x00"),
    (b"/z/\xff", b"/z/\xff\x00"),
], ids=["plain", "ends-in-nul", "ends-in-ff"])
def test_next_key_is_the_smallest_key_after(key, following):
    assert ranges.next_key(key) == following and key < following


@pytest.mark.parametrize(("keys", "page_size", "pages"), [
    (0, 10, 1),
    (1, 10, 1),
    (10, 10, 1),  # etcd says "no more" on a full last page
    (11, 10, 2),
    (50, 7, 8),
    (5, 1, 5),
], ids=["empty", "one", "exactly-one-page", "one-over", "several", "one-key-pages"])
async def test_reads_every_key_in_pages(client, prefix, keys, page_size, pages):
    want = {f"{prefix}k{i:03}": f"v{i}".encode() for i in range(keys)}
    await put_all(client, want)
    await client.put(f"{prefix[:-1]}0".encode(), b"just after the prefix")
    await client.put(f"{prefix[:-1]}.".encode(), b"just before the prefix")
    loaded = await ranges.read_prefix(client, prefix=prefix.encode(), timeout=2.0,
                                      page_size=page_size)
    assert loaded.data == want
    assert (loaded.pages, loaded.restarts) == (pages, 0)


@pytest.mark.parametrize(("keys", "size", "want"), [
    (1000, 130_000, 16_131),  # SkyDNS records: ~2 MiB pages
    (1000, 1_024_000, 2_048),  # 1 KB values
    (3, 3_600_000, 1),  # values near etcd's limit: one a page
    (10, 10, 100_000),  # tiny keys: capped
    (0, 0, 100_000),  # nothing learnt (never asked: an empty page ends the read)
], ids=["records", "1k-values", "huge-values", "capped", "empty"])
def test_next_page_size_aims_at_the_target_bytes(keys, size, want):
    assert ranges.next_page_size(keys=keys, size=size, target=2 * 1024 * 1024,
                                 maximum=100_000) == want


async def test_default_pages_grow_to_the_target_size(client, prefix):
    """2,800 values of 1 KB: a first page of 1,000 keys (~1 MB), then up to ~8,000 a page."""
    want = {f"{prefix}k{i:05}": b"v" * 1024 for i in range(2800)}
    await Writer(client=client).apply(ModelChanges(puts=want))
    try:
        loaded = await ranges.read_prefix(client, prefix=prefix.encode(), timeout=5.0)
        assert loaded.data == want and loaded.pages == 2
    finally:
        await client.delete_prefix(prefix.encode())


async def test_keys_a_nul_apart_are_both_read(client, prefix):
    want = {f"{prefix}a": b"1", f"{prefix}a\x00": b"2", f"{prefix}a\x00\x00": b"3",
            f"{prefix}a\x01": b"4"}
    await put_all(client, want)
    loaded = await ranges.read_prefix(client, prefix=prefix.encode(), timeout=2.0, page_size=1)
    assert loaded.data == want and loaded.pages == 4


async def test_every_page_is_read_at_the_first_pages_revision(client, prefix):
    first = await put_all(client, {f"{prefix}k{i}": b"old" for i in range(6)})
    shim = Shim(client, after_page=lambda n: client.put(f"{prefix}k5".encode(), b"new")
                if n == 1 else None)
    loaded = await ranges.read_prefix(shim, prefix=prefix.encode(), timeout=2.0, page_size=2)
    # k5 was changed after the first page: the read still shows it as of that page.
    assert loaded.revision == first and loaded.data[f"{prefix}k5"] == b"old"
    assert loaded.pages == 3 and shim.ranges == 3


async def test_a_compaction_during_the_read_starts_it_again(client, prefix):
    await put_all(client, {f"{prefix}k{i}": b"old" for i in range(6)})

    async def change_and_compact(page: int) -> None:
        if page == 1:  # between the first and the second page, once
            await client.delete(f"{prefix}k0".encode())
            put = await client.put(f"{prefix}k9".encode(), b"new")
            await client.compact(put.header.revision)

    shim = Shim(client, after_page=change_and_compact)
    loaded = await ranges.read_prefix(shim, prefix=prefix.encode(), timeout=2.0, page_size=2)
    assert loaded.restarts == 1
    want = {f"{prefix}k{i}": b"old" for i in range(1, 6)} | {f"{prefix}k9": b"new"}
    assert loaded.data == want  # the second read, whole, at the newer revision


async def test_compactions_overtaking_every_read_give_up(client, prefix):
    await put_all(client, {f"{prefix}k{i}": b"v" for i in range(4)})

    async def compact_every_time(page: int) -> None:
        put = await client.put(f"{prefix}churn".encode(), str(page).encode())
        await client.compact(put.header.revision)

    shim = Shim(client, after_page=compact_every_time)
    with pytest.raises(aetcd.RevisionCompactedError):
        await ranges.read_prefix(shim, prefix=prefix.encode(), timeout=2.0, page_size=2,
                                 attempts=3)
    assert shim.ranges == 3  # each attempt: a first page, then a second one refused


async def test_a_page_past_the_grpc_limit_is_asked_again_with_fewer_keys(client, prefix):
    """Values near etcd's request limit: 100 keys a page would be 18 MB (our channels take
    ranges.RECEIVE_LIMIT, 16 MiB)."""
    want = {f"{prefix}big{i:02}": bytes([65 + i]) * 1_200_000 for i in range(15)}
    await put_all(client, want)
    try:
        loaded = await ranges.read_prefix(client, prefix=prefix.encode(), timeout=10.0,
                                          page_size=100)
        assert loaded.data == want
        assert loaded.pages == 2  # 100 -> 50 -> 25 -> 12 keys a page: 12 (14.4 MB), then 3
    finally:
        await client.delete_prefix(prefix.encode())


class _Counting:
    """A client's KV stub whose Range calls are counted, refused ones included."""

    def __init__(self, client) -> None:
        self.client, self.metadata, self.calls = client, client.metadata, 0
        self.kvstub = self

    async def Range(self, request, **kwargs):  # noqa: N802 - the gRPC method's name
        self.calls += 1
        return await self.client.kvstub.Range(request, **kwargs)


async def test_a_client_with_grpcs_default_limit_reads_in_smaller_pages(client, etcd_server, prefix):
    """aetcd's own client takes 4 MiB: the 8 MiB pages aimed at are refused once, then the
    rest of the read aims at 4 MiB, and then 2 MiB after the next refusal, never again."""
    want = {f"{prefix}k{i:05}": bytes([65 + i % 26]) * 1024 for i in range(12_000)}  # 12 MB
    await Writer(client=client).apply(ModelChanges(puts=want))
    plain = aetcd.Client(host="127.0.0.1", port=int(etcd_server.url.rsplit(":", 1)[1]), timeout=10)
    try:
        await plain.connect()
        counting = _Counting(plain)
        loaded = await ranges.read_prefix(counting, prefix=prefix.encode(), timeout=10.0)
        assert loaded.data == want
        assert counting.calls - loaded.pages <= 2, (counting.calls, loaded.pages)  # refusals
        with pytest.raises(aetcd.ClientError):  # what a page of the default target would be
            await plain.get_prefix(prefix.encode())
    finally:
        await plain.close()
        await client.delete_prefix(prefix.encode())


async def test_revision_readable(client, prefix):
    put = await client.put(f"{prefix}a".encode(), b"1")
    now = put.header.revision
    assert await ranges.revision_readable(client, prefix.encode(), revision=now, timeout=2.0)
    assert not await ranges.revision_readable(client, prefix.encode(), revision=now + 1000,
                                              timeout=2.0)


@dataclass
class _Stub:
    """etcd's KV stub, with a hook run after each Range answer: lets a test change etcd
    (compact it) at an exact point of a read, deterministically."""

    shim: Shim

    async def Range(self, request, **kwargs):  # noqa: N802 - the gRPC method's name
        response = await self.shim.client.kvstub.Range(request, **kwargs)
        self.shim.ranges += 1
        hook = self.shim.after_page(self.shim.ranges)
        if hook is not None:
            await hook
        return response


class Shim:
    """The parts of aetcd.Client that read_prefix uses, over a real client."""

    def __init__(self, client: aetcd.Client, *, after_page) -> None:
        self.client = client
        self.after_page = after_page
        self.ranges = 0
        self.kvstub = _Stub(self)
        self.metadata = client.metadata

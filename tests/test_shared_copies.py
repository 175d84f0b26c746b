"""The repository carries copies of the data its tests need from ../shared/ (a user clones
only this repository). When ../shared/ is there, the copies must still equal it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import REPO

SHARED = REPO.parent / "shared"
COPIES = {  # file in ../shared -> its copy in this repository
    "conformance/coredns-etcd.yaml": "tests/data/conformance/coredns-etcd.yaml",
    "conformance/README.md": "tests/data/conformance/README.md",
}


@pytest.mark.parametrize(("original", "copy"), sorted(COPIES.items()), ids=sorted(COPIES))
def test_copy_is_in_the_repository(original: str, copy: str) -> None:
    assert (REPO / copy).is_file(), f"{copy} is missing: copy it from ../shared/{original}"


@pytest.mark.parametrize(("original", "copy"), sorted(COPIES.items()), ids=sorted(COPIES))
def test_copy_equals_shared_when_shared_is_there(original: str, copy: str) -> None:
    source = SHARED / original
    if not SHARED.is_dir():
        # Nothing to compare against in a lone clone; the copy itself is checked above.
        assert (REPO / copy).is_file()
        return
    assert source.is_file(), f"../shared/{original} is gone: update COPIES"
    assert (REPO / copy).read_bytes() == source.read_bytes(), (
        f"{copy} differs from ../shared/{original}: copy it again")


def test_no_test_reads_outside_the_repository() -> None:
    """No test or helper names ../shared (or another path above the repository) directly."""
    offenders = []
    for path in (REPO / "tests").rglob("*.py"):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text()
        if any(pattern in text for pattern in ('/ "shared"', "/ 'shared'", 'Path("shared")',
                                               '"../shared', "'../shared")):
            offenders.append(str(path.relative_to(REPO)))
    assert not offenders, f"tests that read ../shared directly: {offenders}"

"""A version written with an attributes digest always needs it: a flipped bit that renames the
``attrs_digest`` key (or both digest keys at once, as a compressed back-reference can) is
refused by the reader and reported by `mer-prep verify`, while a version written before
digests (neither key) still reads."""

from __future__ import annotations

import pytest
import zarr
from test_store import make_plan, write_version

from mer_prep.errors import CorruptDataError
from mer_prep.store import open_store
from mer_prep.store.layout import MAIN
from mer_prep.store.repo import StoreLocation, open_repository
from mer_prep.store.schema import DIGEST_KEY, TABLE_DIGEST_KEY, attrs_problem
from mer_prep.store.verify import verify_store


def _flip(key: str, bit: int) -> str:
    """``key`` with bit ``bit`` (0 = the lowest bit of its first character) flipped."""
    chars = list(key)
    chars[bit // 8] = chr(ord(chars[bit // 8]) ^ (1 << (bit % 8)))
    return "".join(chars)


def _renamed(attrs: dict, renames: dict[str, str]) -> dict:
    """``attrs`` with keys renamed, values and order otherwise as read."""
    return {renames.get(key, key): value for key, value in attrs.items()}


def _commit_attrs(store, attrs: dict) -> None:
    session = open_repository(StoreLocation.parse(store)).writable_session(MAIN)
    zarr.open_group(session.store, mode="r+").attrs.put(attrs)
    session.commit("root attributes as a flipped bit leaves them")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    store = tmp_path_factory.mktemp("digest") / "s"
    write_version(make_plan(store, n=2))
    return store, dict(open_store(store).attrs)


def test_every_flipped_bit_of_the_digest_key_is_refused(written):
    _, attrs = written
    assert DIGEST_KEY in attrs and TABLE_DIGEST_KEY in attrs
    assert attrs_problem(attrs) is None
    for bit in range(8 * len(DIGEST_KEY)):
        flipped = _flip(DIGEST_KEY, bit)
        assert flipped != DIGEST_KEY and flipped not in attrs
        problem = attrs_problem(_renamed(attrs, {DIGEST_KEY: flipped}))
        assert problem is not None and "lack their digest" in problem, (bit, flipped)


def test_a_bit_flipped_in_both_digest_keys_at_once_is_refused(written):
    _, attrs = written
    suffix = len(DIGEST_KEY) - len("_digest")  # the part both keys share
    assert DIGEST_KEY[suffix:] == TABLE_DIGEST_KEY[len(TABLE_DIGEST_KEY) - 7 :]
    for bit in range(8 * suffix, 8 * len(DIGEST_KEY)):
        tail = bit - 8 * suffix
        renames = {
            DIGEST_KEY: _flip(DIGEST_KEY, bit),
            TABLE_DIGEST_KEY: _flip(TABLE_DIGEST_KEY, 8 * (len(TABLE_DIGEST_KEY) - 7) + tail),
        }
        renamed = _renamed(attrs, renames)
        assert DIGEST_KEY not in renamed and TABLE_DIGEST_KEY not in renamed
        problem = attrs_problem(renamed)
        assert problem is not None and "no writer wrote" in problem, bit
        assert all(repr(key) in problem for key in renames.values()), (bit, problem)


def test_a_version_written_before_digests_still_reads(written):
    _, attrs = written
    old = {k: v for k, v in attrs.items() if k not in (DIGEST_KEY, TABLE_DIGEST_KEY)}
    assert attrs_problem(old) is None
    # a changed value under the digest is still caught
    assert attrs_problem({**attrs, "n_ok": attrs["n_ok"] + 1}) == "do not match their digest"


@pytest.mark.parametrize("bit", [0, 8 * len("attrs") + 3, 8 * len(DIGEST_KEY) - 1])
def test_a_stored_version_whose_digest_key_is_renamed_raises_and_is_reported(tmp_path, bit):
    store = tmp_path / "s"
    write_version(make_plan(store, n=2))
    attrs = dict(open_store(store).attrs)
    flipped = _flip(DIGEST_KEY, bit)
    _commit_attrs(store, _renamed(attrs, {DIGEST_KEY: flipped}))
    reopened = open_store(store)
    assert dict(reopened.group.attrs)[flipped] == attrs[DIGEST_KEY]  # the rename is what reads
    with pytest.raises(CorruptDataError, match="lack their digest"):
        _ = reopened.attrs
    broken = verify_store(store)
    assert [(b.array, b.row, b.predates_checksums) for b in broken] == [
        ("(attributes)", None, False)
    ]
    assert "lack their digest" in broken[0].problem

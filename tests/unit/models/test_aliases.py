from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.aliases import CHAMPION, MAX_HISTORY, AliasRecord, moved, rolled_back
from models.errors import NoPreviousChampion

NOW = datetime(2024, 2, 1, tzinfo=UTC)
versions = st.lists(st.from_regex(r"v[0-9]{1,4}", fullmatch=True), min_size=1, max_size=20)


def test_first_move_has_no_history_and_rollback_refuses():
    record = moved(None, CHAMPION, "v1", NOW)
    assert (record.version, record.history) == ("v1", ())
    with pytest.raises(NoPreviousChampion, match="champion v1 has no previous champion"):
        rolled_back(record, NOW)
    with pytest.raises(NoPreviousChampion, match="no champion"):
        rolled_back(None, NOW)


@given(versions)
def test_rollback_after_promotions_walks_back_through_distinct_predecessors(sequence):
    record = None
    served: list[str] = []
    for version in sequence:
        record = moved(record, CHAMPION, version, NOW)
        if not served or served[-1] != version:
            served.append(version)
    assert record is not None and record.version == served[-1]
    for expected in reversed(served[:-1][-MAX_HISTORY:]):
        record = rolled_back(record, NOW)
        assert record.version == expected
    with pytest.raises(NoPreviousChampion):
        rolled_back(record, NOW)


def test_record_roundtrips_through_bytes():
    record = AliasRecord(alias=CHAMPION, version="v3", history=("v1", "v2"), updated_at=NOW)
    assert AliasRecord.from_bytes(record.to_bytes()) == record


def test_signed_bytes_keep_the_record_readable_and_split_back():
    from models.aliases import signed_bytes, split_signed
    from models.signing import sign

    record = AliasRecord(alias=CHAMPION, version="v3", history=("v1", "v2"), updated_at=NOW)
    signature = sign(record.to_bytes(), b"k" * 32)
    stored = signed_bytes(record, signature)
    assert AliasRecord.from_bytes(stored) == record  # a reader that knows nothing of signatures
    assert split_signed(stored) == (record, signature)
    assert split_signed(record.to_bytes()) == (record, None)


def test_a_malformed_alias_signature_is_a_tampered_alias():
    import json

    from models.aliases import split_signed
    from models.errors import TAMPERED_ALIAS, ModelVerificationError

    doc = json.loads(AliasRecord(alias=CHAMPION, version="v3", updated_at=NOW).to_bytes())
    for bad in ({"algorithm": "MD5", "key_id": "x", "hmac": "y"}, "not a dict", {"hmac": "only"}):
        with pytest.raises(ModelVerificationError) as caught:
            split_signed(json.dumps({**doc, "signature": bad}).encode())
        assert caught.value.kind == TAMPERED_ALIAS
    with pytest.raises(ModelVerificationError) as caught:
        split_signed(b"{not json")
    assert caught.value.kind == TAMPERED_ALIAS and "malformed" in caught.value.reason

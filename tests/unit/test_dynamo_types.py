"""shared.aws.dynamo encodes and decodes items exactly as boto3's TypeSerializer/TypeDeserializer
(the reference implementation; the module avoids importing boto3 for cold starts)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.aws import dynamo

numbers = st.one_of(
    st.integers(min_value=-(10**37), max_value=10**37),
    st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20), st.binary(max_size=10))
sets = st.one_of(
    st.frozensets(numbers, min_size=1, max_size=4),
    st.frozensets(st.text(max_size=8), min_size=1, max_size=4),
    st.frozensets(st.binary(max_size=8), min_size=1, max_size=4),
)
values = st.recursive(
    st.one_of(scalars, sets),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> bool:
    """AttributeValues equal, sets compared as sets (their list order is the set's iteration order)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return False
        return all(
            sorted(map(repr, a[k])) == sorted(map(repr, b[k]))
            if k in ("SS", "NS", "BS")
            else _same(a[k], b[k])
            for k in a
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


# Generation of nested values is slow on a loaded machine; the examples themselves are what count.
relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@relaxed
@given(values)
def test_serialize_matches_boto3(value: Any) -> None:
    assert _same(dynamo.to_value(value), TypeSerializer().serialize(value))


@relaxed
@given(values)
def test_deserialize_matches_boto3(value: Any) -> None:
    wire = TypeSerializer().serialize(value)
    ours, theirs = dynamo.from_item({"v": wire})["v"], TypeDeserializer().deserialize(wire)

    def plain(x: Any) -> Any:  # boto3 wraps binary in Binary; we return bytes
        if isinstance(x, Binary):
            return bytes(x)
        if isinstance(x, set):
            return {plain(v) for v in x}
        if isinstance(x, list):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x

    assert ours == plain(theirs)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, "Float types are not supported"),
        (Decimal("Infinity"), "Infinity and NaN not supported"),
        ({1, "a"}, "Unsupported type"),
        (object(), "Unsupported type"),
    ],
)
def test_refuses_what_boto3_refuses(value: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        TypeSerializer().serialize(value)
    with pytest.raises(TypeError, match=message):
        dynamo.to_value(value)


def test_inexact_numbers_are_refused() -> None:
    from decimal import Inexact

    with pytest.raises(Inexact):
        dynamo.to_value(Decimal("1." + "1" * 40))


def test_to_item_drops_none_attributes() -> None:
    assert dynamo.to_item({"a": None, "b": 1, "c": {"d": None}}) == {
        "b": {"N": "1"},
        "c": {"M": {"d": {"NULL": True}}},
    }

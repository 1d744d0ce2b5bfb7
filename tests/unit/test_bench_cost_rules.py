"""The cost bench prices requests by DynamoDB's size rules; a wrong rule misstates every figure."""

from __future__ import annotations

from bench.cost import item_size, value_size


def test_strings_and_names_count_utf8_bytes() -> None:
    assert item_size({"pk": {"S": "abc"}, "é": {"S": "ü"}}) == 2 + 3 + 2 + 2


def test_numbers_count_significant_digits() -> None:
    assert value_size({"N": "0"}) == 2
    assert value_size({"N": "1200"}) == 2  # trailing zeros are not significant
    assert value_size({"N": "123456"}) == 4
    assert value_size({"N": "-0.0012345"}) == 4


def test_maps_and_lists_carry_three_bytes_plus_one_per_element() -> None:
    assert value_size({"M": {"a": {"S": "xy"}}}) == 3 + 1 + 2 + 1
    assert value_size({"L": [{"S": "xy"}, {"BOOL": True}]}) == 3 + (2 + 1) + (1 + 1)

"""Deep-object query parameters (`filter[key][op]=v`): malformed names are refused, never ignored."""

from __future__ import annotations

import pytest

from shared.api.params import nested
from shared.api.problem import ApiError


def test_a_well_formed_name_nests() -> None:
    assert nested({"filter[key][eq]": "x", "filter[currency]": "USD", "page[size]": "5"}, "filter") == {
        "key": {"eq": "x"},
        "currency": "USD",
    }


@pytest.mark.parametrize("name", ["filter[lâ]]", "filter[a", "filter]x[", "filter[a]b", "filter[[a]]"])
def test_a_malformed_name_under_the_root_is_a_400_naming_it(name: str) -> None:
    # Found by the contract fuzz: `filter[lâ]]=305` on the credit transactions list was ignored (200).
    with pytest.raises(ApiError) as info:
        nested({name: "1"}, "filter")
    assert info.value.status == 400
    assert name in str(info.value.detail)


def test_other_roots_are_left_alone() -> None:
    assert nested({"page[size": "1"}, "filter") == {}

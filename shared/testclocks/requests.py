"""Test clock request bodies and query strings (the only module with their wire names)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.api.params import Page, page_params
from shared.api.validation import Rfc3339, validate_model
from shared.core.timeutil import EARLIEST_INSTANT, LATEST_INSTANT


def _in_range(value: datetime) -> datetime:
    if not EARLIEST_INSTANT <= value < LATEST_INSTANT:
        raise ValueError("must be from 1970-01-01T00:00:00Z to before 2200-01-01T00:00:00Z")
    return value


FrozenTime = Annotated[Rfc3339, AfterValidator(_in_range)]


class CreateTestClockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frozen_time: FrozenTime
    name: str | None = Field(default=None, min_length=1, max_length=256)


class AdvanceTestClockRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frozen_time: FrozenTime


def create(body: Any) -> CreateTestClockRequest:
    return validate_model(CreateTestClockRequest, body)


def advance(body: Any) -> AdvanceTestClockRequest:
    return validate_model(AdvanceTestClockRequest, body)


@dataclass(frozen=True)
class ListQuery:
    page: Page


def list_query(params: dict[str, str] | None) -> ListQuery:
    return ListQuery(page_params(params))

"""Invoice requests: path ids, the list's query string, action names (the only wire names)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from shared.api.params import nested, page_params
from shared.api.validation import validate_model
from shared.core.errors import InvalidInput
from shared.core.ids import is_ulid
from shared.core.listing import sort_items
from shared.core.timeutil import parse_rfc3339
from shared.invoices.models import GATHERING
from shared.invoices.service import SORTS, InvoiceQuery
from shared.invoices.states import Action, ExtendedStatus, Status

STATUSES = tuple(sorted({s.value for s in Status} | {s.value for s in ExtendedStatus}))
# The API's action paths (dashes) -> the state machine's actions; delete is `DELETE /invoices/{id}`.
ACTIONS = {a.value.replace("_", "-"): a for a in Action if a is not Action.DELETE}


class PaymentStatusRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trigger: Literal[
        "paid", "payment_failed", "payment_uncollectible", "payment_overdue", "action_required", "void"
    ]


def payment_status(body: Any) -> str:
    return validate_model(PaymentStatusRequest, body).trigger


def path_id(value: str, name: str = "invoiceId") -> str:
    if not is_ulid(value):
        raise InvalidInput.field(name, "must be a ULID", "matches_regex", "path")
    return value


def customer_ref(value: str) -> str:
    if not value or len(value) > 256:
        raise InvalidInput.field("customerId", "must be a customer id or key", "invalid", "path")
    return value


def _values(name: str, spec: Any) -> list[str]:
    """`filter[x]=a`, `filter[x][eq]=a` or `filter[x][oeq]=a,b`."""
    if isinstance(spec, str):
        return [spec]
    if isinstance(spec, dict) and len(spec) == 1:
        op, value = next(iter(spec.items()))
        if op in ("eq", "oeq") and isinstance(value, str):
            return [v for v in value.split(",") if v] if op == "oeq" else [value]
    raise InvalidInput.field(f"filter[{name}]", "use filter[...]=value, [eq] or [oeq]", "invalid", "query")


def _time(name: str, value: Any) -> datetime:
    try:
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 date-time")
        return parse_rfc3339(value)
    except ValueError as exc:
        raise InvalidInput.field(name, str(exc), "is_date_time", "query") from None


def list_invoices(params: dict[str, str] | None) -> InvoiceQuery:
    """Page pagination; `filter[customer_id]`, `filter[status]` (simple or extended, eq / oeq),
    `filter[currency]`, `filter[issued_at][gte|lt]`; `sort` `created_at`, `issued_at`, `id`."""
    page = page_params(params)
    spec = nested(params, "filter")
    customer_id = currency = None
    statuses: list[str] = []
    gte = lt = None
    for name, value in spec.items():
        if name == "customer_id":
            ids = _values(name, value)
            if len(ids) != 1 or not is_ulid(ids[0]):
                raise InvalidInput.field("filter[customer_id]", "must be one ULID", "matches_regex", "query")
            customer_id = ids[0]
        elif name == "status":
            statuses = _values(name, value)
            bad = [v for v in statuses if v not in STATUSES]
            if bad:
                raise InvalidInput.field(
                    "filter[status]", f"unknown status [{bad[0]}]", "enum", "query", STATUSES
                )
        elif name == "currency":
            found = _values(name, value)
            if len(found) != 1 or not (3 <= len(found[0]) <= 24):
                raise InvalidInput.field("filter[currency]", "must be one currency code", "invalid", "query")
            currency = found[0]
        elif name == "issued_at":
            if not isinstance(value, dict) or not value or set(value) - {"gte", "lt"}:
                raise InvalidInput.field("filter[issued_at]", "use [gte] and/or [lt]", "invalid", "query")
            gte = _time("filter[issued_at][gte]", value["gte"]) if "gte" in value else None
            lt = _time("filter[issued_at][lt]", value["lt"]) if "lt" in value else None
        else:
            raise InvalidInput.field(
                f"filter[{name}]",
                "unknown filter; supported: customer_id, status, currency, issued_at",
                "unknown_property",
                "query",
            )
    if GATHERING in statuses and customer_id is None:
        raise InvalidInput.field(
            "filter[status]",
            "gathering invoices are listed per customer: add filter[customer_id]",
            "invalid",
            "query",
        )
    sort = (params or {}).get("sort")
    if sort is not None:
        sort = ",".join(f"{p.strip()[1:]} desc" if p.strip().startswith("-") else p for p in sort.split(","))
    sort_items([], sort, SORTS, "created_at")  # validates `sort` before any read
    return InvoiceQuery(page, customer_id, tuple(statuses), currency, gte, lt, sort)

"""GET /v3/openmeter/events: cursor pages both ways, sort orders, filters, attribution, validation errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from moto.backends import get_backend

from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.events import listing
from tests.support import contract
from tests.support.contract import full_headers  # noqa: F401  (fixture)
from tests.support.harness import INGESTER, SERVICES, VIEWER, Stack

pytestmark = pytest.mark.usefixtures("full_headers")
OP = "list-metering-events"
PREFIX = "/v3/openmeter"
NOW = datetime.now(UTC).replace(microsecond=0)
# Every day in the window costs 8 shard queries (~2 ms each on moto); most tests keep it short.
TEST_WINDOW = timedelta(days=5)


@pytest.fixture(autouse=True)
def _short_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "DEFAULT_WINDOW", TEST_WINDOW)


def ev(n: int, time_: datetime, subject: str = "sub-a", **kw: Any) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": f"evt-{n:03d}",
        "source": kw.pop("source", "svc-a"),
        "type": kw.pop("type", "prompt"),
        "subject": subject,
        "time": format_rfc3339(time_),
        "data": kw.pop("data", {"tokens": n}),
    }
    return event


def ingest(stack: Stack, events: list[dict[str, Any]]) -> None:
    resp = stack.ingest(events)
    assert resp.status == 202, resp
    stack.drain()


def get(stack: Stack, params: dict[str, str] | None = None, token: str = VIEWER) -> Any:
    path = "/events" + (f"?{urlencode(params, quote_via=quote)}" if params else "")
    return stack.request("GET", path, token=token)


def ok(resp: Any) -> dict[str, Any]:
    assert resp.status == 200, resp
    return contract.validate(resp, OP)


def follow(stack: Stack, link: str) -> dict[str, Any]:
    assert link.startswith(PREFIX + "/events")
    return ok(stack.request("GET", link[len(PREFIX) :], token=VIEWER))


def ids(body: dict[str, Any]) -> list[str]:
    return [d["event"]["id"] for d in body["data"]]


def bad(resp: Any, field: str) -> dict[str, Any]:
    assert resp.status == 400, resp
    body = contract.validate(resp, OP)
    assert resp.headers["content-type"] == "application/problem+json"
    assert field in [p["field"] for p in body["invalid_parameters"]], body
    return body


SPREAD = [
    ev(
        n,
        NOW - timedelta(days=n // 6, minutes=7 * n),
        subject=("sub-a", "sub-b", "other")[n % 3],
        source=("svc-a", "svc-b")[n % 2],
        type=("prompt", "completion")[n % 4 == 0],
    )
    for n in range(23)
]  # 23 events over 4 days (several per day, across shards), two sources, types and subjects


@pytest.fixture(scope="class")
def spread_stack(_moto: None) -> Any:
    """One stack holding SPREAD for the read-only tests of a class (provisioning is the slow part)."""
    stack = Stack()
    ingest(stack, SPREAD)
    yield stack
    for service in SERVICES:
        get_backend(service).reset()


def by_time_desc(events: list[dict[str, Any]]) -> list[str]:
    return [e["id"] for e in sorted(events, key=lambda e: (e["time"], e["source"], e["id"]), reverse=True)]


# -- one shared data set: listing, paging, sort by time, string/time filters, bad parameters ---------
Pred = Callable[[dict[str, Any]], bool]
STRING_CASES: list[tuple[str, str, str, Pred]] = [
    ("id", "eq", "evt-004", lambda e: e["id"] == "evt-004"),
    ("id", "oeq", "evt-001,evt-002,nope", lambda e: e["id"] in ("evt-001", "evt-002")),
    ("id", "neq", "evt-004", lambda e: e["id"] != "evt-004"),
    ("id", "contains", "T-01", lambda e: "evt-01" in e["id"]),
    ("id", "ocontains", "-00,-02", lambda e: "-00" in e["id"] or "-02" in e["id"]),
    ("source", "eq", "svc-b", lambda e: e["source"] == "svc-b"),
    ("source", "oeq", "svc-a,svc-x", lambda e: e["source"] == "svc-a"),
    ("source", "neq", "svc-a", lambda e: e["source"] != "svc-a"),
    ("source", "contains", "C-B", lambda e: e["source"] == "svc-b"),
    ("source", "ocontains", "x,-a", lambda e: e["source"] == "svc-a"),
    ("subject", "eq", "sub-a", lambda e: e["subject"] == "sub-a"),
    ("subject", "oeq", "sub-a,other", lambda e: e["subject"] in ("sub-a", "other")),
    ("subject", "neq", "other", lambda e: e["subject"] != "other"),
    ("subject", "contains", "sub", lambda e: e["subject"].startswith("sub")),
    ("subject", "ocontains", "-b,oth", lambda e: e["subject"] in ("sub-b", "other")),
    ("type", "eq", "completion", lambda e: e["type"] == "completion"),
    ("type", "oeq", "prompt,nope", lambda e: e["type"] == "prompt"),
    ("type", "neq", "prompt", lambda e: e["type"] != "prompt"),
    ("type", "contains", "PLET", lambda e: e["type"] == "completion"),
    ("type", "ocontains", "zzz,romp", lambda e: e["type"] == "prompt"),
]
BAD_PARAMS: list[tuple[dict[str, str], str]] = [
    ({"filter[foo]": "x"}, "filter[foo]"),
    ({"filter[foo][eq]": "x"}, "filter[foo]"),
    ({"filter[subject][like]": "x"}, "filter[subject][like]"),
    ({"filter[subject][eq]": "x", "filter[subject][neq]": "y"}, "filter[subject]"),
    ({"filter[time][gte]": "yesterday"}, "filter[time][gte]"),
    ({"filter[stored_at][between]": "2024-01-01T00:00:00Z"}, "filter[stored_at][between]"),
    ({"filter[ingested_at]": "2024-01-01"}, "filter[ingested_at][eq]"),
    ({"filter[customer_id]": "acme"}, "filter[customer_id][eq]"),
    ({"filter[customer_id][oeq]": "01ARZ3NDEKTSV4RRFFQ69G5FAV,x"}, "filter[customer_id][oeq]"),
    ({"filter[customer_id][contains]": "01"}, "filter[customer_id][contains]"),
    ({"page[size]": "0"}, "page[size]"),
    ({"page[size]": "101"}, "page[size]"),
    ({"page[size]": "ten"}, "page[size]"),
    ({"page[number]": "2"}, "page[number]"),
    ({"page[after]": "bm90LWEtY3Vyc29y"}, "page[after]"),
    ({"page[before]": "%%%"}, "page[before]"),
    ({"sort": "subject"}, "sort"),
    ({"sort": "time sideways"}, "sort"),
    ({"sort": "time,stored_at"}, "sort"),
]


def everything_by(field: str, value: Any) -> list[str]:
    return [e["id"] for e in SPREAD if e[field] == value]


class TestSharedData:
    expected = by_time_desc(SPREAD)

    def test_default_lists_newest_first_in_contract_shape(self, spread_stack: Stack) -> None:
        body = ok(get(spread_stack))
        assert ids(body) == self.expected
        page = body["meta"]["page"]
        assert page["size"] == 100 and page["next"] is None and page["previous"] is None
        assert page["first"] == "/v3/openmeter/events"
        item = body["data"][0]
        assert item["event"] == next(e for e in SPREAD if e["id"] == item["event"]["id"])
        assert parse_rfc3339(item["ingested_at"]) <= parse_rfc3339(item["stored_at"])

    def test_pages_forward_and_back_without_gaps_or_duplicates(self, spread_stack: Stack) -> None:
        params = {"page[size]": "4", "filter[source][ocontains]": "svc"}
        body = ok(get(spread_stack, params))
        assert body["meta"]["page"]["previous"] is None
        pages = [ids(body)]
        while body["meta"]["page"]["next"]:
            assert "filter[source][ocontains]=svc" in body["meta"]["page"]["next"]
            body = follow(spread_stack, body["meta"]["page"]["next"])
            pages.append(ids(body))
        assert [len(p) for p in pages] == [4, 4, 4, 4, 4, 3]
        assert [i for p in pages for i in p] == self.expected
        # ...and back from the last page along `previous`.
        back = [ids(body)]
        while body["meta"]["page"]["previous"]:
            body = follow(spread_stack, body["meta"]["page"]["previous"])
            back.append(ids(body))
        assert back == pages[::-1]
        # `last` pages backwards from the far end (pages aligned from that end).
        body = follow(spread_stack, body["meta"]["page"]["last"])
        assert ids(body) == self.expected[-4:]
        assert body["meta"]["page"]["next"] is None
        body = follow(spread_stack, body["meta"]["page"]["previous"])
        assert ids(body) == self.expected[-8:-4]
        assert ids(follow(spread_stack, body["meta"]["page"]["next"])) == self.expected[-4:]

    def test_an_exhausted_next_page_still_links_back(self, spread_stack: Stack) -> None:
        assert ok(get(spread_stack, {"page[size]": "23"}))["meta"]["page"]["next"] is None
        almost = ok(get(spread_stack, {"page[size]": "11", "filter[source][eq]": "svc-a"}))
        tail = follow(spread_stack, almost["meta"]["page"]["next"])
        assert len(tail["data"]) == 1 and tail["meta"]["page"]["next"] is None
        assert ids(follow(spread_stack, tail["meta"]["page"]["previous"])) == ids(almost)

    def test_sort_by_time(self, spread_stack: Stack) -> None:
        for sort, desc in [
            (None, True),
            ("time", True),
            ("time desc", True),
            ("time asc", False),
            ("time ASC", False),
        ]:
            params = {"page[size]": "12"} | ({"sort": sort} if sort else {})
            body = ok(get(spread_stack, params))
            seen = ids(body)
            while body["meta"]["page"]["next"]:
                body = follow(spread_stack, body["meta"]["page"]["next"])
                seen += ids(body)
            assert seen == (self.expected if desc else self.expected[::-1]), sort

    def test_string_filters_every_field_and_operator(self, spread_stack: Stack) -> None:
        for field, op, value, pred in STRING_CASES:
            want = [i for i in self.expected if pred(next(e for e in SPREAD if e["id"] == i))]
            assert want and want != self.expected, (field, op)
            got = ids(ok(get(spread_stack, {f"filter[{field}][{op}]": value})))
            assert got == want, (field, op, value)
        # A bare value means eq; filters combine with AND.
        got = ids(ok(get(spread_stack, {"filter[subject]": "sub-a", "filter[source][eq]": "svc-b"})))
        assert got == [i for i in self.expected if (int(i[-3:]) % 3, int(i[-3:]) % 2) == (0, 1)]

    def test_time_filters(self, spread_stack: Stack) -> None:
        times = {e["id"]: parse_rfc3339(e["time"]) for e in SPREAD}
        pivot, other = SPREAD[6]["time"], SPREAD[13]["time"]
        p, o = parse_rfc3339(pivot), parse_rfc3339(other)
        cases: list[tuple[dict[str, str], Callable[[datetime], bool]]] = [
            ({"filter[time][gte]": pivot}, lambda t: t >= p),
            ({"filter[time][gt]": pivot}, lambda t: t > p),
            ({"filter[time][lte]": pivot}, lambda t: t <= p),
            ({"filter[time][lt]": pivot}, lambda t: t < p),
            ({"filter[time][eq]": pivot}, lambda t: t == p),
            ({"filter[time]": pivot}, lambda t: t == p),
            ({"filter[time][gte]": other, "filter[time][lt]": pivot}, lambda t: o <= t < p),
        ]
        for params, pred in cases:
            want = [i for i in self.expected if pred(times[i])]
            assert want, params
            for sort in ("time", "time asc"):
                got = ids(ok(get(spread_stack, params | {"sort": sort, "page[size]": "3"})))
                assert got == (want if sort == "time" else want[::-1])[:3], (params, sort)
        empty = {"filter[time][gt]": pivot, "filter[time][lt]": pivot}
        assert ok(get(spread_stack, empty))["data"] == []

    def test_bad_parameters_are_400_naming_the_parameter(self, spread_stack: Stack) -> None:
        for params, field in BAD_PARAMS:
            body = bad(get(spread_stack, params), field)
            assert field in body["detail"], params

    def test_tampered_and_mismatched_cursors(self, spread_stack: Stack) -> None:
        link = ok(get(spread_stack, {"page[size]": "1"}))["meta"]["page"]["next"]
        cursor = link.split("page[after]=")[1]
        assert ids(ok(get(spread_stack, {"page[size]": "1", "page[after]": cursor}))) == self.expected[1:2]
        for n in (0, 5, len(cursor) - 1):
            flipped = cursor[:n] + ("A" if cursor[n] != "A" else "B") + cursor[n + 1 :]
            bad(get(spread_stack, {"page[size]": "1", "page[after]": flipped}), "page[after]")
        bad(get(spread_stack, {"page[after]": cursor, "sort": "time asc"}), "page[after]")
        bad(get(spread_stack, {"page[after]": cursor, "page[before]": cursor}), "page[before]")

    def test_roles(self, spread_stack: Stack) -> None:
        assert get(spread_stack, token=VIEWER).status == 200
        resp = get(spread_stack, token=INGESTER)
        assert resp.status == 403, resp
        contract.validate(resp, OP)
        resp = spread_stack.request("GET", "/events", token=None)
        assert resp.status == 401, resp
        contract.validate(resp, OP)


# -- ingested_at and stored_at -------------------------------------------------------------------------
def test_ingested_at_and_stored_at_sorts_and_filters(stack: Stack) -> None:
    # Batch 1 is newer by event time but ingested (and stored) first.
    ingest(stack, [ev(n, NOW - timedelta(minutes=n)) for n in range(3)])
    time.sleep(0.005)
    ingest(stack, [ev(n, NOW - timedelta(days=3, minutes=n)) for n in range(3, 6)])
    first, second = {"evt-000", "evt-001", "evt-002"}, {"evt-003", "evt-004", "evt-005"}
    for field in ("ingested_at", "stored_at"):
        for suffix in ("", " desc", " asc"):
            body = ok(get(stack, {"sort": field + suffix, "page[size]": "3"}))
            items = body["data"]
            while body["meta"]["page"]["next"]:
                body = follow(stack, body["meta"]["page"]["next"])
                items += body["data"]
            desc = suffix != " asc"
            values = [i[field] for i in items]
            assert values == sorted(values, reverse=desc), (field, suffix)
            halves = [{i["event"]["id"] for i in items[:3]}, {i["event"]["id"] for i in items[3:]}]
            assert halves == ([second, first] if desc else [first, second]), (field, suffix)

        pivot = min(i[field] for i in items if i["event"]["id"] in second)
        assert all(i[field] < pivot for i in items if i["event"]["id"] in first)
        for sort in ("time", f"{field} asc"):
            got = ok(get(stack, {f"filter[{field}][gte]": pivot, "sort": sort}))["data"]
            assert {g["event"]["id"] for g in got} == second, (field, sort)
            got = ok(get(stack, {f"filter[{field}][lt]": pivot, "sort": sort}))["data"]
            assert {g["event"]["id"] for g in got} == first, (field, sort)
        # Equality is on the instant as shown, whatever precision the index keeps.
        shown = items[4][field]
        exact = ok(get(stack, {f"filter[{field}]": shown, "sort": field}))["data"]
        assert items[4]["event"]["id"] in [g["event"]["id"] for g in exact]
        assert all(g[field] == shown for g in exact)


def test_default_window_is_32_days_and_a_lower_bound_reaches_further(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(listing, "DEFAULT_WINDOW", timedelta(days=32))
    ingest(
        stack,
        [
            ev(1, NOW - timedelta(days=40)),
            ev(2, NOW - timedelta(days=31)),
            ev(3, NOW + timedelta(hours=2)),  # slightly in the future: still listed
        ],
    )
    assert ids(ok(get(stack))) == ["evt-003", "evt-002"]
    older = {"filter[time][gte]": format_rfc3339(NOW - timedelta(days=41))}
    assert ids(ok(get(stack, older))) == ["evt-003", "evt-002", "evt-001"]
    assert ids(ok(get(stack, older | {"sort": "time asc"}))) == ["evt-001", "evt-002", "evt-003"]
    upper = {"filter[time][lt]": format_rfc3339(NOW - timedelta(days=35))}
    assert ids(ok(get(stack, upper))) == ["evt-001"]


# -- customers and validation errors ----------------------------------------------------------------
def create_customer(stack: Stack, key: str, subjects: list[str]) -> str:
    resp = stack.request(
        "POST",
        "/customers",
        {"key": key, "name": key.title(), "usage_attribution": {"subject_keys": subjects}},
    )
    assert resp.status == 201, resp
    return str(resp.json()["id"])


def test_customers_are_attributed_at_read_time_and_filter_by_id(stack: Stack) -> None:
    subjects = ["acme-1", "beta-1", "acme-2", "nobody", "acme"]  # "acme" = the customer's key
    ingest(stack, [ev(n, NOW - timedelta(minutes=n), s) for n, s in enumerate(subjects)])
    before = ok(get(stack))["data"]
    for item in before:
        subject = item["event"]["subject"]
        assert "customer" not in item
        assert item["validation_errors"] == [
            {
                "code": "customer_not_found",
                "message": f"no customer found for event subject: {subject}",
                "attributes": {"subject": subject},
            }
        ]
    acme = create_customer(stack, "acme", ["acme-1", "acme-2"])
    beta = create_customer(stack, "beta", ["beta-1"])
    after = {d["event"]["id"]: d for d in ok(get(stack))["data"]}
    owners = {"evt-000": acme, "evt-001": beta, "evt-002": acme, "evt-004": acme}
    for n, item in after.items():
        if n in owners:
            assert item["customer"] == {"id": owners[n]} and item["validation_errors"] == [], item
        else:
            assert "customer" not in item
            assert [e["code"] for e in item["validation_errors"]] == ["customer_not_found"]

    assert ids(ok(get(stack, {"filter[customer_id]": acme}))) == ["evt-000", "evt-002", "evt-004"]
    assert ids(ok(get(stack, {"filter[customer_id][eq]": beta}))) == ["evt-001"]
    both = ids(ok(get(stack, {"filter[customer_id][oeq]": f"{acme},{beta}"})))
    assert both == ["evt-000", "evt-001", "evt-002", "evt-004"]
    assert ids(ok(get(stack, {"filter[customer_id][neq]": acme}))) == ["evt-001", "evt-003"]
    assert ok(get(stack, {"filter[customer_id]": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}))["data"] == []
    body = ok(get(stack, {"filter[customer_id][eq]": acme, "page[size]": "2"}))
    assert [d["customer"]["id"] for d in body["data"]] == [acme, acme]
    assert ids(follow(stack, body["meta"]["page"]["next"])) == ["evt-004"]


def test_stored_meter_validation_errors_are_listed(stack: Stack) -> None:
    meter = {
        "key": "tokens_total",
        "name": "Tokens",
        "aggregation": "sum",
        "event_type": "prompt",
        "value_property": "$.tokens",
    }
    assert stack.request("POST", "/meters", meter).status == 201
    create_customer(stack, "acme", ["acme-subject"])
    ingest(
        stack,
        [
            ev(1, NOW, "acme-subject", data={"tokens": "lots"}),
            ev(2, NOW - timedelta(seconds=1), "acme-subject", data={"tokens": 5}),
            ev(3, NOW - timedelta(seconds=2), "unknown-subject", data={}),
        ],
    )
    by_id = {d["event"]["id"]: d for d in ok(get(stack))["data"]}
    errors = by_id["evt-001"]["validation_errors"]
    assert [e["code"] for e in errors] == ["invalid_value"]
    assert errors[0]["message"].startswith("invalid event:")
    assert errors[0]["attributes"] == {"meter": "tokens_total"}
    assert by_id["evt-002"]["validation_errors"] == []
    errors = by_id["evt-003"]["validation_errors"]
    assert [e["code"] for e in errors] == ["customer_not_found", "invalid_value"]

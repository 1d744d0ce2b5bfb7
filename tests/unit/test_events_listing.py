"""The event listing's walk, cursors and parameters against an events table on moto (no stack).

Blocks are written the way the aggregator writes them (blocks.py), with instants chosen so that the
three orders differ and blocks overlap, spread over days and hours, including days long enough to
need several index query pages, and copies of events written again under another part.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import boto3
import pytest
from moto import mock_aws

from shared.api.problem import BadRequest
from shared.aws import resources as r
from shared.aws.dynamo import batch_put
from shared.core.errors import InvalidInput
from shared.core.timeutil import format_rfc3339, parse_rfc3339
from shared.events import listing, views
from shared.events.blocks import ORDERS, block_items, record_key, sort_key
from shared.events.keys import sortable
from shared.events.listing import EventLister
from shared.events.models import Cursor, TimeRange
from shared.events.requests import parse_list_query, parse_sort

NOW = datetime(2025, 3, 10, 12, 0, 0, tzinfo=UTC)
TABLE = r.EVENTS_TABLE.local_name
ACME = "01JNZ0000000000000000ACME0"
BETA = "01JNZ0000000000000000BETA0"


@pytest.fixture(autouse=True)
def _short_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every day of a window costs an index query (~2 ms each on moto)."""
    monkeypatch.setattr(listing, "DEFAULT_WINDOW", timedelta(days=6))


class FixedClock:
    def now(self) -> datetime:
        return NOW


@dataclass(frozen=True)
class Ref:
    id: str


class FakeAttribution:
    owners = {"acme-1": ACME, "acme-2": ACME, "beta-1": BETA}

    def resolve_subjects(self, subjects: Iterable[str]) -> dict[str, Ref]:
        return {s: Ref(self.owners[s]) for s in subjects if s in self.owners}

    def subjects_of(self, customer_ids: Iterable[str]) -> dict[str, list[str]]:
        ids = set(customer_ids)
        out: dict[str, list[str]] = {}
        for subject, owner in self.owners.items():
            if owner in ids:
                out.setdefault(owner, []).append(subject)
        return out


class CountingClient:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.queries = 0
        self.continued = 0  # queries for a day's second and later pages
        self.blocks_read = 0

    def query(self, **kwargs: Any) -> Any:
        self.queries += 1
        self.continued += "ExclusiveStartKey" in kwargs
        return self.client.query(**kwargs)

    def batch_get_item(self, **kwargs: Any) -> Any:
        self.blocks_read += sum(len(r["Keys"]) for r in kwargs["RequestItems"].values())
        return self.client.batch_get_item(**kwargs)


@pytest.fixture(scope="module")
def ddb() -> Iterator[Any]:
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def table(ddb: Any) -> Iterator[Any]:
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    gsis = []
    for index in r.EVENTS_TABLE.indexes:
        assert index.sort_key
        attrs += [
            {"AttributeName": index.partition_key, "AttributeType": "S"},
            {"AttributeName": index.sort_key, "AttributeType": "S"},
        ]
        gsis.append(
            {
                "IndexName": index.name,
                "KeySchema": [
                    {"AttributeName": index.partition_key, "KeyType": "HASH"},
                    {"AttributeName": index.sort_key, "KeyType": "RANGE"},
                ],
                "Projection": index.projection_request(),
            }
        )
    # Another module's moto (same process, same backends) may have left a table of this name.
    if TABLE in ddb.list_tables()["TableNames"]:
        ddb.delete_table(TableName=TABLE)
    ddb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=attrs,
        GlobalSecondaryIndexes=gsis,
        BillingMode="PAY_PER_REQUEST",
    )
    yield ddb
    ddb.delete_table(TableName=TABLE)


@dataclass
class Stored:
    key: str
    event: dict[str, Any]
    instants: dict[str, datetime]  # as indexed

    @property
    def id(self) -> str:
        return str(self.event["id"])

    def sk(self, order: str) -> str:
        return f"{sortable(self.instants[order])}#{self.key}"


def store(
    client: Any,
    rows: list[tuple[datetime, datetime, datetime]],
    subjects: Iterable[str] | None = None,
    errors: dict[int, list[dict[str, Any]]] | None = None,
    expires: dict[int, datetime] | None = None,
    per_batch: int = 5,
    copies: Iterable[int] = (),
) -> list[Stored]:
    """rows: (time, ingested_at, stored_at) per event; stored_at keeps microseconds like the aggregator.
    Every `per_batch` consecutive rows are one aggregator batch (blocks split by hour from there);
    the rows in `copies` are written a second time in a batch of their own (a replay cut differently)."""
    subjects = list(subjects or [])
    out, records = [], []
    for n, (t, ingested, stored) in enumerate(rows):
        source = ("svc-a", "svc-b")[n % 2]
        event = {
            "specversion": "1.0",
            "id": f"e{n:04d}",
            "source": source,
            "type": ("prompt", "completion")[n % 3 == 0],
            "subject": subjects[n] if n < len(subjects) else "anon",
            "time": format_rfc3339(t),
            "data": {"n": n},
        }
        record: dict[str, Any] = {
            "e": event,
            "t": event["time"],
            "i": format_rfc3339(ingested),
            "s": format_rfc3339(stored),
        }
        if errors and n in errors:
            record["v"] = errors[n]
        records.append(record)
        instants = {"time": t, "ingested_at": parse_rfc3339(format_rfc3339(ingested)), "stored_at": stored}
        out.append(Stored(record_key(record), event, instants))
    batches = [records[i : i + per_batch] for i in range(0, len(records), per_batch)]
    batches += [[records[n]] for n in copies]
    items = []
    for b, batch in enumerate(batches):
        keys = {record_key(rec): {order: sort_key(rec, order) for order in ORDERS} for rec in batch}
        for item in block_items(f"shard-{b}", batch, keys):
            items.append(item)
    for n, when in (expires or {}).items():  # that row alone, in a block expiring then
        rec = records[n]
        for item in items:
            if item["pk"]["S"].startswith(f"B#shard-{n // per_batch}#"):
                batch_records = batches[n // per_batch]
                assert batch_records == [rec], "give an expiring row a batch of its own"
                item["expires_at"] = {"N": str(int(when.timestamp()))}
    batch_put(client, TABLE, items)
    return out


class Listing:
    """What `GET /events` does: parse the parameters, run the listing, render the page."""

    def __init__(self, lister: EventLister) -> None:
        self.lister = lister

    def list(self, params: dict[str, str]) -> dict[str, Any]:
        query = parse_list_query(params)
        return views.page("/v3/openmeter/events", query, self.lister.run(query))


def lister(client: Any, **kw: Any) -> Listing:
    # No wall-clock budget unless a test sets one: page sizes asserted here must not depend on how
    # loaded the machine is (a budget that runs out returns a short page, by design).
    kw.setdefault("max_seconds", 3600.0)
    return Listing(EventLister(client, TABLE, FakeAttribution(), clock=FixedClock(), **kw))  # type: ignore[arg-type]


def params_of(link: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(link).query))


def walk_all(lst: Listing, params: dict[str, str], link: str = "next") -> tuple[list[str], list[int]]:
    body = lst.list(params)
    seen, sizes = [d["event"]["id"] for d in body["data"]], [len(body["data"])]
    while body["meta"]["page"][link]:
        body = lst.list(params_of(body["meta"]["page"][link]))
        page = [d["event"]["id"] for d in body["data"]]
        seen = seen + page if link == "next" else page + seen
        sizes.append(len(page))
    return seen, sizes


def ordered(stored: list[Stored], order: str, desc: bool) -> list[str]:
    return [s.id for s in sorted(stored, key=lambda s: s.sk(order), reverse=desc)]


def mixed_rows(count: int, days: int) -> list[tuple[datetime, datetime, datetime]]:
    """Instants whose three orders all differ; stored_at has microseconds."""
    rows = []
    for n in range(count):
        t = NOW - timedelta(days=(n * 7) % days, minutes=(n * 37) % 1440)
        ingested = NOW - timedelta(days=(n * 3) % days, seconds=n * 11, milliseconds=n)
        stored = ingested + timedelta(milliseconds=(n * 13) % 997, microseconds=(n * 17) % 1000)
        rows.append((t, ingested, stored))
    return rows


# -- the walk ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["time", "ingested_at", "stored_at"])
def test_every_order_both_ways_pages_across_days_and_shards(table: Any, order: str) -> None:
    stored = store(table, mixed_rows(60, 4))
    lst = lister(table)
    for desc in (True, False):
        sort = order if desc else f"{order} asc"
        expected = ordered(stored, order, desc)
        seen, sizes = walk_all(lst, {"sort": sort, "page[size]": "25"})
        assert seen == expected, sort
        assert sizes == [25, 25, 10]
        # Backwards from the far end gives the same sequence, pages aligned from that end.
        last = lst.list({"sort": sort, "page[size]": "25"})["meta"]["page"]["last"]
        back, sizes = walk_all(lst, params_of(last), link="previous")
        assert back == expected and sizes == [25, 25, 10], sort


def test_a_busy_day_pages_through_several_index_queries(table: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "ENTRIES_PER_QUERY", 7)
    rows = [(NOW - timedelta(seconds=n), NOW, NOW) for n in range(200)]
    stored = store(table, rows)
    client = CountingClient(table)
    seen, sizes = walk_all(lister(client), {"page[size]": "50"})
    assert seen == ordered(stored, "time", True)
    assert sizes == [50, 50, 50, 50]
    assert client.continued > 0


def test_a_full_page_stops_the_walk_early(table: Any) -> None:
    store(table, [(NOW - timedelta(minutes=n), NOW, NOW) for n in range(50)])
    client = CountingClient(table)
    body = lister(client).list({"page[size]": "5"})
    assert len(body["data"]) == 5 and body["meta"]["page"]["next"]
    assert client.queries <= 3  # tomorrow, today and one prefetched day
    assert client.blocks_read <= 4  # of 14 blocks: those that can hold the first 6 events, in time order


def test_overlapping_blocks_merge_exactly_and_copies_are_listed_once(table: Any) -> None:
    """Batches whose events interleave in every order (late events, retries), and events written
    twice by a replay cut differently: every order, both ways, pages without gaps or repeats."""
    rows = mixed_rows(40, 2)
    stored = store(table, rows, per_batch=7, copies=[0, 5, 17, 39])
    lst = lister(table)
    for order in ORDERS:
        for desc in (True, False):
            sort = order if desc else f"{order} asc"
            seen, _sizes = walk_all(lst, {"sort": sort, "page[size]": "6"})
            assert seen == ordered(stored, order, desc), sort


def test_window_defaults_and_range_filters_move_it(table: Any) -> None:
    ages = [0, 3, 5.5, 7, 20, 30]
    rows = [(NOW - timedelta(days=a), NOW, NOW) for a in ages] + [(NOW + timedelta(hours=3),) * 3]
    stored = store(table, rows)
    lst = lister(table, retention_days=25)
    by_age = {a: s.id for a, s in zip(ages, stored, strict=False)}
    future = stored[-1].id

    def ids(params: dict[str, str]) -> list[str]:
        return [d["event"]["id"] for d in lst.list(params)["data"]]

    # DEFAULT_WINDOW (6 days here, 32 in production) back from now; the near future included.
    assert ids({}) == [future, by_age[0], by_age[3], by_age[5.5]]
    assert ids({"filter[time][gte]": format_rfc3339(NOW - timedelta(days=21))})[-1] == by_age[20]
    # ...but never beyond the retention: the item is about to expire.
    assert by_age[30] not in ids({"filter[time][gte]": "2020-01-01T00:00:00Z"})
    # An upper bound alone: DEFAULT_WINDOW before it.
    assert ids({"filter[time][lt]": format_rfc3339(NOW - timedelta(days=6))}) == [by_age[7]]
    assert ids({"filter[time][lte]": format_rfc3339(NOW - timedelta(days=19))}) == [by_age[20]]


def test_budgets_return_resumable_short_pages(table: Any) -> None:
    rows = [(NOW - timedelta(days=d, hours=1), NOW, NOW) for d in (0, 1, 2, 9, 10, 11)]
    stored = store(table, rows)
    window = {"filter[time][gte]": format_rfc3339(NOW - timedelta(days=12)), "page[size]": "2"}
    for sort, desc in (("time", True), ("time asc", False)):
        expected = ordered(stored, "time", desc)
        # Two days per request: pages come back short or empty, with a `next` that resumes the walk.
        seen, sizes = walk_all(lister(table, max_days=2), window | {"sort": sort})
        assert seen == expected and 0 in sizes and 1 in sizes, (sort, sizes)
        # Few items per request, with a filter that rejects most of them.
        filtered = window | {"sort": sort, "filter[id][oeq]": "e0001,e0004"}
        seen, sizes = walk_all(lister(table, max_scanned=1), filtered)
        assert seen == [i for i in expected if i in ("e0001", "e0004")] and 0 in sizes, (sort, sizes)
        # ...and backwards, from the far end.
        last = lister(table, max_days=2).list(window | {"sort": sort})["meta"]["page"]["last"]
        back, sizes = walk_all(lister(table, max_days=2), params_of(last), link="previous")
        assert back == expected and 0 in sizes, (sort, sizes)


def test_expired_blocks_are_not_listed(table: Any) -> None:
    store(table, [(NOW, NOW, NOW), (NOW, NOW, NOW)], expires={1: NOW - timedelta(seconds=1)}, per_batch=1)
    assert [d["event"]["id"] for d in lister(table).list({})["data"]] == ["e0000"]


def test_instant_filters_compare_the_values_shown(table: Any) -> None:
    stored_at = NOW - timedelta(hours=1) + timedelta(microseconds=123456)  # shown as ...00.123456Z
    store(table, [(NOW, NOW, stored_at), (NOW, NOW, stored_at + timedelta(microseconds=1))])
    lst = lister(table)
    shown = lst.list({"sort": "stored_at asc"})["data"][0]["stored_at"]
    assert shown == format_rfc3339(stored_at) and shown.endswith(".123456Z")
    for sort in ("stored_at", "time"):
        body = lst.list({"filter[stored_at]": shown, "sort": sort})
        assert [d["event"]["id"] for d in body["data"]] == ["e0000"]
        body = lst.list({"filter[stored_at][gt]": shown, "sort": sort})
        assert [d["event"]["id"] for d in body["data"]] == ["e0001"]
        body = lst.list({"filter[stored_at][lte]": shown, "sort": sort})
        assert [d["event"]["id"] for d in body["data"]] == ["e0000"]


def test_customers_and_validation_errors(table: Any) -> None:
    meter_error = {"code": "invalid_value", "message": "invalid event: nope", "attributes": {"meter": "m"}}
    subjects = ["acme-1", "beta-1", "acme-2", "stranger"]
    store(
        table,
        [(NOW - timedelta(minutes=n), NOW, NOW) for n in range(4)],
        subjects=subjects,
        errors={2: [meter_error], 3: [meter_error]},
    )
    client = CountingClient(table)
    lst = lister(client)
    data = {d["event"]["id"]: d for d in lst.list({})["data"]}
    assert data["e0000"]["customer"] == {"id": ACME} and data["e0000"]["validation_errors"] == []
    assert data["e0002"]["customer"] == {"id": ACME} and data["e0002"]["validation_errors"] == [meter_error]
    assert "customer" not in data["e0003"]
    assert data["e0003"]["validation_errors"] == [
        {
            "code": "customer_not_found",
            "message": "no customer found for event subject: stranger",
            "attributes": {"subject": "stranger"},
        },
        meter_error,
    ]
    ids = lambda p: [d["event"]["id"] for d in lst.list(p)["data"]]  # noqa: E731
    assert ids({"filter[customer_id]": ACME}) == ["e0000", "e0002"]
    assert ids({"filter[customer_id][oeq]": f"{BETA},{ACME}"}) == ["e0000", "e0001", "e0002"]
    assert ids({"filter[customer_id][neq]": ACME}) == ["e0001", "e0003"]  # unattributed included
    before = client.queries
    assert ids({"filter[customer_id]": "01JNZ000000000000000000000"}) == []
    assert client.queries == before  # a customer without subjects needs no walk


# -- parameters and cursors -------------------------------------------------------------------------
def test_cursor_round_trip_and_tampering() -> None:
    cursor = Cursor("2025-03-10T12:00:00.000000Z#svc\x1fe1", "stored_at", False, True)
    token = cursor.encode()
    assert Cursor.decode(token, "page[after]") == cursor
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    for bad in ("", "x", token[:-1], token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], "é"):
        with pytest.raises(InvalidInput) as err:  # a domain error: the app renders it as a 400
            Cursor.decode(bad, "page[after]")
        assert err.value.fields[0].field == "page[after]"


def test_parse_defaults_and_sort() -> None:
    q = parse_list_query({})
    assert (q.order, q.desc, q.size, q.after, q.before, q.strings, q.customer, q.ranges) == (
        "time",
        True,
        100,
        None,
        None,
        (),
        None,
        {},
    )
    assert parse_sort("ingested_at") == ("ingested_at", True)
    assert parse_sort("stored_at asc") == ("stored_at", False)
    assert parse_sort("  time   DESC ") == ("time", True)
    for bad in ("subject", "time up", "time asc desc", "time,stored_at"):
        with pytest.raises(BadRequest):
            parse_sort(bad)


def test_time_ranges_combine_operators() -> None:
    q = parse_list_query(
        {
            "filter[time][gte]": "2025-03-01T00:00:00Z",
            "filter[time][gt]": "2025-03-01T00:00:00Z",
            "filter[time][lt]": "2025-03-05T00:00:00.5Z",
        }
    )
    rng = q.ranges["time"]
    assert rng.lower == datetime(2025, 3, 1, tzinfo=UTC) and not rng.lower_inclusive
    assert not rng.matches(datetime(2025, 3, 1, tzinfo=UTC))
    assert rng.matches(datetime(2025, 3, 5, 0, 0, 0, 499000, tzinfo=UTC))
    assert not rng.matches(datetime(2025, 3, 5, 0, 0, 0, 500000, tzinfo=UTC))
    lower, upper = TimeRange("t", upper=datetime(2025, 3, 5, 0, 0, 0, 500700, tzinfo=UTC)).index_span()
    assert lower is None and upper == datetime(2025, 3, 5, 0, 0, 0, 501000, tzinfo=UTC)
    assert TimeRange("t").tightened("gt", NOW).tightened("lt", NOW).empty
    assert not TimeRange("t").tightened("eq", NOW).empty


def test_links_keep_the_other_parameters(table: Any) -> None:
    store(table, [(NOW - timedelta(minutes=n), NOW, NOW) for n in range(3)])
    params = {"page[size]": "1", "filter[subject][oeq]": "anon,x y", "sort": "time asc"}
    page = lister(table).list(params)["meta"]["page"]
    assert page["first"].startswith("/v3/openmeter/events?")
    nxt = params_of(page["next"])
    assert {k: v for k, v in nxt.items() if k != "page[after]"} == params
    assert "x%20y" in page["next"] and "page[after]=" in page["next"]
    assert page["previous"] is None

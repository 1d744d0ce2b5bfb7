"""The subject index: which subjects have usage of an event type, so that a query without a subject
filter finds the counter partitions (they are keyed by meter and subject, see counters.py).

Items (usage table), no attributes beyond the key:
  pk = "S#T#<event_type>"   sk = <subject>   written by this release
  pk = "S#<meter_id>"       sk = <subject>   written by releases before issue 12 (never again)

Rules:
- One item per (event type, subject), not per (meter, subject): every meter counting an event
  type shares it, so a new subject costs one write (and one read) however many meters count its
  events. A meter's event type never changes (UpdateMeterRequest has no `event_type`), so its
  subjects stay in one partition for its lifetime.
- The aggregate writes a subject's item before any counter or member of any meter on that type,
  and never deletes one: a subject missing from the index has no usage. The converse doesn't
  hold: a listed subject may have events of the type that none of a meter's filters counted (or
  that came before the meter's `events_from`); its counter reads then find nothing, which is the
  right answer.
- Readers take the union of both partitions. Existing deployments (and the local stack's
  persisted .local/state) hold subjects indexed only under "S#<meter_id>" by the previous release;
  such a subject gets its type's item only when it has events again, possibly never (a past
  period still billed or queried). One more Query (or key) per meter read is cheaper and safer
  than a migration that scans the usage table while the aggregate writes to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shared.aws.dynamo import batch_get, query_all, to_item
from shared.meters.models import Meter

_PREFIX = "S#"
_TYPE_PREFIX = "S#T#"


def index_pk(event_type: str) -> str:
    return f"{_TYPE_PREFIX}{event_type}"


def legacy_index_pk(meter_id: str) -> str:
    """The previous release's partition (a meter id is a ULID, so it can't start with "T#")."""
    return f"{_PREFIX}{meter_id}"


def index_item(event_type: str, subject: str) -> dict[str, Any]:
    return to_item({"pk": index_pk(event_type), "sk": subject})


def subjects_of(client: Any, table: str, meter: Meter) -> list[str]:
    """Every subject that may have usage on `meter` (sorted, each once): its event type's
    partition and the previous release's partition of the meter itself."""
    found: set[str] = set()
    for pk in (index_pk(meter.event_type), legacy_index_pk(meter.id)):
        items = query_all(
            client,
            TableName=table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": {"S": pk}},
            ProjectionExpression="sk",
        )
        found.update(i["sk"]["S"] for i in items)
    return sorted(found)


def indexed_pairs(
    client: Any, table: str, meters: Iterable[Meter], subjects: Iterable[str], consistent: bool = False
) -> set[tuple[str, str]]:
    """The (meter id, subject) pairs among `meters` x `subjects` that are indexed, in batched reads
    of both partitions (see the module docstring)."""
    meters = list(meters)
    subjects = sorted(set(subjects))
    pks: dict[str, list[str]] = {}  # index pk -> the meter ids it answers for
    for meter in meters:
        pks.setdefault(index_pk(meter.event_type), []).append(meter.id)
        pks.setdefault(legacy_index_pk(meter.id), []).append(meter.id)
    keys = [to_item({"pk": pk, "sk": s}) for pk in sorted(pks) for s in subjects]
    found = batch_get(client, table, keys, consistent=consistent, projection="pk, sk")
    return {(meter_id, str(i["sk"]["S"])) for i in found for meter_id in pks[str(i["pk"]["S"])]}

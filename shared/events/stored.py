"""A stored event item (events table) read back: the event and its validation errors as JSON.

The aggregator writes these items; the listing reads them. It lives with the events so that the
listing need not import the aggregator (usage depends on events, not the other way round).
"""

from __future__ import annotations

from typing import Any

import orjson

from shared.aws.dynamo import from_item


def stored_event_from_item(item: dict[str, Any]) -> dict[str, Any]:
    rec = from_item(item)
    rec["event"] = orjson.loads(rec["event"])
    if rec.get("validation_errors"):
        rec["validation_errors"] = orjson.loads(rec["validation_errors"])
    return rec

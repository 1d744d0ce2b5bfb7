"""Billing settings in the config table (docs/architecture.md "Billing profiles, apps, customer billing").

- App `APP#<id> / APP` (gsi1 `APP` / `<type>`): the installed apps, provisioned on first use.
- Profile `BPROFILE#<id> / BPROFILE` (gsi1 `BPROFILE` / `<created_at>#<id>`): fields, `doc` (supplier,
  workflow, apps as JSON), `rev` (every update is conditional on it), `pinned` (how many customer
  overrides name it), `deleted_at` (soft delete: invoices keep naming the profile they snapshotted).
- Default pointer `BPROFILEDEFAULT / BPROFILEDEFAULT`: `profile_id`. "Exactly one default" is one item,
  moved in the same transaction as the profile write that takes the flag, conditional on the pointer
  read; a profile's `default` is derived from it, so no two profile items must agree.
- Customer override `CUSTBILLING#<customer> / CUSTBILLING`: `profile_id`, `app_data`, `rev`; when it pins a
  profile, gsi1 `BPROFILECUST#<profile>` / `<customer>` lists who pins it. Its write moves the `pinned`
  counters of the old and new profile in one transaction, and a profile's delete is conditional on
  `pinned = 0` and on the pointer naming another profile: "in use" can't race with a delete.
"""

from __future__ import annotations

from typing import Any

import orjson
from botocore.exceptions import ClientError

from shared.aws.dynamo import from_item, query_all, to_item, to_value
from shared.aws.repository import TableRepository
from shared.billing.models import (
    Address,
    Alignment,
    AlignmentType,
    App,
    AppData,
    AppStatus,
    AppType,
    CollectionMethod,
    CustomerBilling,
    ExternalInvoicingCustomerData,
    Profile,
    ProfileApps,
    ProrationMode,
    StripeCustomerData,
    Supplier,
    TaxBehavior,
    Workflow,
)
from shared.core.timeutil import format_optional, format_rfc3339, parse_optional, parse_rfc3339

DEFAULT_KEY = {"pk": "BPROFILEDEFAULT", "sk": "BPROFILEDEFAULT"}
_LIVE = "attribute_exists(pk) AND attribute_not_exists(deleted_at)"


class WriteConflict(Exception):
    """A conditional write lost: the item changed since it was read, or a condition on another failed."""


# -- records ----------------------------------------------------------------------------------------
def _app_record(app: App) -> dict[str, Any]:
    return {
        "pk": f"APP#{app.id}",
        "sk": "APP",
        "gsi1pk": "APP",
        "gsi1sk": app.type.value,
        "id": app.id,
        "type": app.type.value,
        "name": app.name,
        "description": app.description,
        "status": app.status.value,
        "enable_draft_sync_hook": app.enable_draft_sync_hook,
        "enable_issuing_sync_hook": app.enable_issuing_sync_hook,
        "account_id": app.account_id,
        "livemode": app.livemode,
        "masked_api_key": app.masked_api_key,
        "key_fingerprint": app.key_fingerprint,
        "created_at": format_rfc3339(app.created_at),
        "updated_at": format_rfc3339(app.updated_at),
    }


def _app_from(rec: dict[str, Any]) -> App:
    return App(
        id=rec["id"],
        type=AppType(rec["type"]),
        name=rec["name"],
        description=rec["description"],
        status=AppStatus(rec["status"]),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
        enable_draft_sync_hook=bool(rec.get("enable_draft_sync_hook")),
        enable_issuing_sync_hook=bool(rec.get("enable_issuing_sync_hook")),
        account_id=rec.get("account_id"),
        livemode=bool(rec.get("livemode")),
        masked_api_key=rec.get("masked_api_key"),
        key_fingerprint=rec.get("key_fingerprint"),
    )


def _drop_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _doc(p: Profile) -> str:
    s, w = p.supplier, p.workflow
    supplier = _drop_none(
        {
            "name": s.name,
            "key": s.key,
            "tax_id": s.tax_id,
            "address": _drop_none(vars(s.address)) if s.address else None,
        }
    )
    workflow = _drop_none(
        {
            "alignment": _drop_none(
                {
                    "type": w.alignment.type.value,
                    "anchor": format_optional(w.alignment.anchor),
                    "interval": w.alignment.interval,
                }
            ),
            "collection_interval": w.collection_interval,
            "auto_advance": w.auto_advance,
            "draft_period": w.draft_period,
            "progressive_billing": w.progressive_billing,
            "proration_mode": w.proration_mode.value,
            "collection_method": w.collection_method.value,
            "due_after": w.due_after,
            "tax_enabled": w.tax_enabled,
            "tax_enforced": w.tax_enforced,
            "tax_behavior": w.tax_behavior.value if w.tax_behavior else None,
        }
    )
    apps = {"tax": p.apps.tax, "invoicing": p.apps.invoicing, "payment": p.apps.payment}
    return orjson.dumps({"supplier": supplier, "workflow": workflow, "apps": apps}).decode()


def _profile_record(p: Profile, rev: int) -> dict[str, Any]:
    return {
        "pk": f"BPROFILE#{p.id}",
        "sk": "BPROFILE",
        "gsi1pk": "BPROFILE",
        "gsi1sk": f"{format_rfc3339(p.created_at)}#{p.id}",
        "id": p.id,
        "name": p.name,
        "description": p.description,
        "labels": p.labels,
        "doc": _doc(p),
        "rev": rev,
        "created_at": format_rfc3339(p.created_at),
        "updated_at": format_rfc3339(p.updated_at),
        "deleted_at": format_optional(p.deleted_at),
    }


def _profile_from(rec: dict[str, Any], default_id: str | None) -> Profile:
    doc = orjson.loads(rec["doc"])
    s, w = doc["supplier"], doc["workflow"]
    a = w["alignment"]
    address = s.get("address")
    return Profile(
        id=rec["id"],
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        supplier=Supplier(
            name=s.get("name"),
            key=s.get("key"),
            tax_id=s.get("tax_id"),
            address=Address(**address) if address is not None else None,
        ),
        workflow=Workflow(
            alignment=Alignment(AlignmentType(a["type"]), parse_optional(a.get("anchor")), a.get("interval")),
            collection_interval=w["collection_interval"],
            auto_advance=w["auto_advance"],
            draft_period=w["draft_period"],
            progressive_billing=w["progressive_billing"],
            proration_mode=ProrationMode(w["proration_mode"]),
            collection_method=CollectionMethod(w["collection_method"]),
            due_after=w["due_after"],
            tax_enabled=w["tax_enabled"],
            tax_enforced=w["tax_enforced"],
            tax_behavior=TaxBehavior(w["tax_behavior"]) if w.get("tax_behavior") else None,
        ),
        apps=ProfileApps(**doc["apps"]),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
        deleted_at=parse_optional(rec.get("deleted_at")),
        default=rec["id"] == default_id,
    )


def _app_data_json(d: AppData) -> str:
    out: dict[str, Any] = {}
    if d.stripe is not None:
        out["stripe"] = _drop_none(vars(d.stripe))
    if d.external_invoicing is not None:
        out["external_invoicing"] = _drop_none(vars(d.external_invoicing))
    return orjson.dumps(out).decode()


def _app_data_from(raw: str | None) -> AppData:
    data = orjson.loads(raw or "{}")
    stripe = StripeCustomerData(**data["stripe"]) if "stripe" in data else None
    external = (
        ExternalInvoicingCustomerData(**data["external_invoicing"]) if "external_invoicing" in data else None
    )
    return AppData(stripe, external)


# -- repository -------------------------------------------------------------------------------------
class BillingRepository(TableRepository):
    # apps
    def put_app_if_absent(self, app: App) -> None:
        try:
            self.client.put_item(
                TableName=self.table,
                Item=to_item(_app_record(app)),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise

    def put_app(self, app: App) -> None:
        self.client.put_item(TableName=self.table, Item=to_item(_app_record(app)))

    def list_apps(self) -> list[App]:
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": to_value("APP")},
        )
        return [_app_from(from_item(i)) for i in items]

    def get_app(self, app_id: str) -> App | None:
        resp = self.client.get_item(
            TableName=self.table, Key=to_item({"pk": f"APP#{app_id}", "sk": "APP"}), ConsistentRead=True
        )
        return _app_from(from_item(resp["Item"])) if "Item" in resp else None

    # profiles
    def default_id(self) -> str | None:
        resp = self.client.get_item(TableName=self.table, Key=to_item(DEFAULT_KEY), ConsistentRead=True)
        return str(from_item(resp["Item"])["profile_id"]) if "Item" in resp else None

    def get_profile(self, profile_id: str) -> tuple[Profile, int, int] | None:
        """The profile (default flag resolved), its revision and its pin count; None if never created."""
        keys = [to_item({"pk": f"BPROFILE#{profile_id}", "sk": "BPROFILE"}), to_item(DEFAULT_KEY)]
        resp = self.client.transact_get_items(
            TransactItems=[{"Get": {"TableName": self.table, "Key": k}} for k in keys]
        )
        profile_item, default_item = (r.get("Item") for r in resp["Responses"])
        if not profile_item:
            return None
        rec = from_item(profile_item)
        default_id = from_item(default_item)["profile_id"] if default_item else None
        return _profile_from(rec, default_id), int(rec["rev"]), int(rec.get("pinned", 0))

    def list_profiles(self) -> list[Profile]:
        """Live profiles, oldest first."""
        default_id = self.default_id()
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            FilterExpression="attribute_not_exists(deleted_at)",
            ExpressionAttributeValues={":p": to_value("BPROFILE")},
        )
        return [_profile_from(from_item(i), default_id) for i in items]

    def _take_default(self, profile_id: str, previous_default: str | None) -> dict[str, Any]:
        """Point the default at `profile_id`, conditional on the pointer still naming `previous_default`."""
        put: dict[str, Any] = {
            "TableName": self.table,
            "Item": to_item({**DEFAULT_KEY, "profile_id": profile_id}),
        }
        if previous_default is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "profile_id = :prev"
            put["ExpressionAttributeValues"] = {":prev": to_value(previous_default)}
        return {"Put": put}

    def create_profile(self, profile: Profile, take_default: bool, previous_default: str | None) -> None:
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.table,
                    "Item": to_item(_profile_record(profile, 1)),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if take_default:
            items.append(self._take_default(profile.id, previous_default))
        self._transact(items, WriteConflict)

    def update_profile(
        self, profile: Profile, rev: int, take_default: bool, previous_default: str | None
    ) -> None:
        """Replace the fields (never `pinned`), conditional on `rev`; move the default pointer with it."""
        rec = _profile_record(profile, rev + 1)
        names = {f"#{k}": k for k in rec if k not in ("pk", "sk") and rec[k] is not None}
        sets = ", ".join(f"#{k} = :{k}" for k in rec if k not in ("pk", "sk") and rec[k] is not None)
        values = {f":{k}": to_value(v) for k, v in rec.items() if k not in ("pk", "sk") and v is not None}
        removes = [k for k in ("description", "labels") if rec[k] is None]
        expr = f"SET {sets}" + (f" REMOVE {', '.join('#' + k for k in removes)}" if removes else "")
        names.update({f"#{k}": k for k in removes})
        values[":read_rev"] = to_value(rev)
        names["#deleted_at"] = "deleted_at"
        update = {
            "TableName": self.table,
            "Key": to_item({"pk": rec["pk"], "sk": rec["sk"]}),
            "UpdateExpression": expr,
            "ConditionExpression": "attribute_exists(pk) AND attribute_not_exists(#deleted_at) "
            "AND #rev = :read_rev",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
        items: list[dict[str, Any]] = [{"Update": update}]
        if take_default:
            items.append(self._take_default(profile.id, previous_default))
        self._transact(items, WriteConflict)

    def delete_profile(self, profile: Profile, rev: int) -> None:
        """Soft delete, unless a customer pins it or it is the default (both checked in the transaction)."""
        self._transact(
            [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": to_item({"pk": f"BPROFILE#{profile.id}", "sk": "BPROFILE"}),
                        "UpdateExpression": "SET deleted_at = :now, updated_at = :now, #rev = :next",
                        "ConditionExpression": f"{_LIVE} AND #rev = :rev AND "
                        "(attribute_not_exists(pinned) OR pinned = :zero)",
                        "ExpressionAttributeNames": {"#rev": "rev"},
                        "ExpressionAttributeValues": {
                            ":now": to_value(format_optional(profile.deleted_at)),
                            ":rev": to_value(rev),
                            ":next": to_value(rev + 1),
                            ":zero": to_value(0),
                        },
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": to_item(DEFAULT_KEY),
                        "ConditionExpression": "attribute_not_exists(pk) OR profile_id <> :id",
                        "ExpressionAttributeValues": {":id": to_value(profile.id)},
                    }
                },
            ],
            WriteConflict,
        )

    def pinning_customers(self, profile_id: str, limit: int) -> list[str]:
        resp = self.client.query(
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": to_value(f"BPROFILECUST#{profile_id}")},
            Limit=limit,
        )
        return [str(from_item(i)["customer_id"]) for i in resp.get("Items", [])]

    # customer overrides
    def get_customer_billing(self, customer_id: str) -> CustomerBilling:
        resp = self.client.get_item(
            TableName=self.table,
            Key=to_item({"pk": f"CUSTBILLING#{customer_id}", "sk": "CUSTBILLING"}),
            ConsistentRead=True,
        )
        if "Item" not in resp:
            return CustomerBilling(customer_id)
        rec = from_item(resp["Item"])
        return CustomerBilling(
            customer_id, rec.get("profile_id"), _app_data_from(rec.get("app_data")), int(rec["rev"])
        )

    def _pin(self, profile_id: str, delta: int) -> dict[str, Any]:
        update: dict[str, Any] = {
            "TableName": self.table,
            "Key": to_item({"pk": f"BPROFILE#{profile_id}", "sk": "BPROFILE"}),
            "UpdateExpression": "ADD pinned :d",
            "ExpressionAttributeValues": {":d": to_value(delta)},
        }
        if delta > 0:  # a customer is never pinned to a missing or deleted profile
            update["ConditionExpression"] = _LIVE
        return {"Update": update}

    def put_customer_billing(self, new: CustomerBilling, old: CustomerBilling) -> None:
        """Write the override conditional on the revision read; move the pin counters with it."""
        rec: dict[str, Any] = {
            "pk": f"CUSTBILLING#{new.customer_id}",
            "sk": "CUSTBILLING",
            "customer_id": new.customer_id,
            "profile_id": new.profile_id,
            "app_data": _app_data_json(new.app_data),
            "rev": old.rev + 1,
        }
        if new.profile_id is not None:
            rec["gsi1pk"] = f"BPROFILECUST#{new.profile_id}"
            rec["gsi1sk"] = new.customer_id
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(rec)}
        if old.rev == 0:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#rev = :rev"
            put["ExpressionAttributeNames"] = {"#rev": "rev"}
            put["ExpressionAttributeValues"] = {":rev": to_value(old.rev)}
        items: list[dict[str, Any]] = [{"Put": put}]
        if old.profile_id != new.profile_id:
            if old.profile_id is not None:
                items.append(self._pin(old.profile_id, -1))
            if new.profile_id is not None:
                items.append(self._pin(new.profile_id, 1))
        self._transact(items, WriteConflict)

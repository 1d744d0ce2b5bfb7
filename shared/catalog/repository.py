"""The catalog in the config table (docs/architecture.md "Catalog items").

Plans and add-ons are versioned per key, with the same items under their own prefix (`PLAN`, `ADDON`):
`<P>#<id> / <P>` the version (gsi1 `<P>` / `<created_at>#<id>` lists them); `<P>KEY#<key> / V#<version>`
the version claim (a Query lists a key's versions in order; a version number is taken once, ever);
`<P>DRAFT#<key> / <P>DRAFT` the draft claim: at most one draft per key. A create writes all three in
one transaction, so two concurrent creates of a key leave one draft. Every later write of a version is
conditional on its `rev`, so a lost race is a conflict, never a silent overwrite.

Rate cards and phases are stored in their contract shape (JSON) and read back through the same parser
the API uses: a stored draft is always something the API would accept.

Plan add-on links live in their plan's partition (`PLAN#<plan> / ADDON#<addon>`): one link per add-on.
Tax codes: `TAXCODE#<id> / TAXCODE` (gsi1 `TAXCODE`), key claim `TAXCODEKEY#<key>`, and the
organisation defaults `TAXDEFAULTS / TAXDEFAULTS`; deleting a tax code checks, in its transaction, that
neither default names it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

import orjson

from shared.aws.dynamo import batch_get, from_item, query_all, to_item, to_value
from shared.aws.repository import TableRepository
from shared.catalog import requests, views
from shared.catalog.models import (
    Addon,
    AppMapping,
    AppType,
    DefaultTaxCodes,
    InstanceType,
    Plan,
    PlanAddon,
    TaxCode,
    ValidationIssue,
)
from shared.core.timeutil import format_rfc3339, parse_optional, parse_rfc3339

T = TypeVar("T", Plan, Addon)


class WriteConflict(Exception):
    """A conditional write lost: the item changed, or a claim is held, since it was read."""


def _dt(rec: dict[str, Any], name: str) -> datetime | None:
    return parse_optional(rec.get(name))


def _issues(raw: str | None) -> tuple[ValidationIssue, ...]:
    return tuple(ValidationIssue(**i) for i in orjson.loads(raw or "[]"))


def _issues_json(issues: tuple[ValidationIssue, ...]) -> str:
    return orjson.dumps([views.validation_issue(i) for i in issues]).decode()


def _base_record(obj: Plan | Addon) -> dict[str, Any]:
    return {
        "id": obj.id,
        "key": obj.key,
        "version": obj.version,
        "name": obj.name,
        "description": obj.description,
        "labels": obj.labels,
        "currency": obj.currency,
        "created_at": format_rfc3339(obj.created_at),
        "updated_at": format_rfc3339(obj.updated_at),
        "effective_from": format_rfc3339(obj.effective_from) if obj.effective_from else None,
        "effective_to": format_rfc3339(obj.effective_to) if obj.effective_to else None,
        "deleted_at": format_rfc3339(obj.deleted_at) if obj.deleted_at else None,
        "validation_errors": _issues_json(obj.validation_errors),
    }


def _base_fields(rec: dict[str, Any]) -> dict[str, Any]:
    """The fields every catalog version shares, read back from `_base_record`'s item."""
    return {
        "id": rec["id"],
        "key": rec["key"],
        "version": int(rec["version"]),
        "name": rec["name"],
        "description": rec.get("description"),
        "labels": rec.get("labels"),
        "currency": rec["currency"],
        "created_at": parse_rfc3339(rec["created_at"]),
        "updated_at": parse_rfc3339(rec["updated_at"]),
        "effective_from": _dt(rec, "effective_from"),
        "effective_to": _dt(rec, "effective_to"),
        "deleted_at": _dt(rec, "deleted_at"),
        "validation_errors": _issues(rec.get("validation_errors")),
    }


def plan_record(p: Plan) -> dict[str, Any]:
    rec = _base_record(p)
    rec.update(
        billing_cadence=p.billing_cadence,
        pro_rating_enabled=p.pro_rating_enabled,
        settlement_mode=p.settlement_mode,
        phases=orjson.dumps([views.phase(x) for x in p.phases]).decode(),
    )
    return rec


def plan_from_record(rec: dict[str, Any]) -> Plan:
    return Plan(
        billing_cadence=rec["billing_cadence"],
        pro_rating_enabled=bool(rec["pro_rating_enabled"]),
        settlement_mode=rec.get("settlement_mode", "credit_then_invoice"),
        phases=requests.phases(orjson.loads(rec["phases"])),
        **_base_fields(rec),
    )


def addon_record(a: Addon) -> dict[str, Any]:
    rec = _base_record(a)
    rec.update(
        instance_type=a.instance_type.value,
        rate_cards=orjson.dumps([views.rate_card(rc) for rc in a.rate_cards]).decode(),
    )
    return rec


def addon_from_record(rec: dict[str, Any]) -> Addon:
    return Addon(
        instance_type=InstanceType(rec["instance_type"]),
        rate_cards=requests.rate_cards(orjson.loads(rec["rate_cards"]), "rate_cards"),
        **_base_fields(rec),
    )


class VersionedRepository(TableRepository, Generic[T]):
    """Versions of a keyed catalog object (plans, add-ons): see the module docstring for the keys."""

    prefix: str
    encode: Callable[[T], dict[str, Any]]
    decode: Callable[[dict[str, Any]], T]

    def _key(self, obj_id: str) -> dict[str, Any]:
        return to_item({"pk": f"{self.prefix}#{obj_id}", "sk": self.prefix})

    def _draft_key(self, key: str) -> dict[str, Any]:
        return to_item({"pk": f"{self.prefix}DRAFT#{key}", "sk": f"{self.prefix}DRAFT"})

    def _item(self, obj: T, rev: int) -> dict[str, Any]:
        rec = type(self).encode(obj)
        rec.update(
            pk=f"{self.prefix}#{obj.id}",
            sk=self.prefix,
            gsi1pk=self.prefix,
            gsi1sk=f"{rec['created_at']}#{obj.id}",
            rev=rev,
        )
        return to_item(rec)

    def _put(self, obj: T, rev: int) -> dict[str, Any]:
        """A Put of the next revision of `obj`, conditional on the one that was read."""
        return {
            "Put": {
                "TableName": self.table,
                "Item": self._item(obj, rev + 1),
                "ConditionExpression": "rev = :rev",
                "ExpressionAttributeValues": {":rev": to_value(rev)},
            }
        }

    def _release_draft(self, obj: T) -> dict[str, Any]:
        return {
            "Delete": {
                "TableName": self.table,
                "Key": self._draft_key(obj.key),
                "ConditionExpression": "id = :id",
                "ExpressionAttributeValues": {":id": to_value(obj.id)},
            }
        }

    # -- writes ----------------------------------------------------------------------------------
    def create(self, obj: T) -> None:
        """The draft, its version claim and the key's draft claim, atomically (WriteConflict if taken)."""
        claim = {"id": obj.id}
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": self._item(obj, 1),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(
                            {"pk": f"{self.prefix}KEY#{obj.key}", "sk": f"V#{obj.version:010d}", **claim}
                        ),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**self._draft_key(obj.key), **to_item(claim)},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
            WriteConflict,
        )

    def save(self, obj: T, rev: int) -> None:
        self._transact([self._put(obj, rev)], WriteConflict)

    def publish(self, obj: T, rev: int, archived: list[tuple[T, int]]) -> None:
        """The published version, its released draft claim, and the versions it archives: one transaction."""
        items = [self._put(obj, rev), self._release_draft(obj)]
        items += [self._put(old, old_rev) for old, old_rev in archived]
        self._transact(items, WriteConflict)

    def delete(self, obj: T, rev: int, was_draft: bool) -> None:
        items = [self._put(obj, rev)]
        if was_draft:
            items.append(self._release_draft(obj))
        self._transact(items, WriteConflict)

    # -- reads -----------------------------------------------------------------------------------
    def get(self, obj_id: str) -> tuple[T, int] | None:
        """The version and its revision (pass it back to the next write)."""
        resp = self.client.get_item(TableName=self.table, Key=self._key(obj_id), ConsistentRead=True)
        if "Item" not in resp:
            return None
        rec = from_item(resp["Item"])
        return type(self).decode(rec), int(rec["rev"])

    def draft_id(self, key: str) -> str | None:
        resp = self.client.get_item(TableName=self.table, Key=self._draft_key(key), ConsistentRead=True)
        return str(from_item(resp["Item"])["id"]) if "Item" in resp else None

    def latest_version(self, key: str) -> int:
        """The highest version number ever taken for `key` (0 when none)."""
        resp = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": to_value(f"{self.prefix}KEY#{key}")},
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = resp.get("Items", [])
        return int(from_item(items[0])["sk"].removeprefix("V#")) if items else 0

    def versions(self, key: str) -> list[tuple[T, int]]:
        """Every version of `key` (deleted ones too), oldest first."""
        claims = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :p",
            ExpressionAttributeValues={":p": to_value(f"{self.prefix}KEY#{key}")},
            ConsistentRead=True,
        )
        keys = [self._key(str(from_item(c)["id"])) for c in claims]
        recs = [from_item(i) for i in batch_get(self.client, self.table, keys)] if keys else []
        return sorted(((type(self).decode(r), int(r["rev"])) for r in recs), key=lambda x: x[0].version)

    def list_all(self) -> list[T]:
        """Every version not deleted, oldest first."""
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            FilterExpression="attribute_not_exists(deleted_at)",
            ExpressionAttributeValues={":p": to_value(self.prefix)},
        )
        return [type(self).decode(from_item(i)) for i in items]


class PlanRepository(VersionedRepository[Plan]):
    prefix = "PLAN"
    encode = staticmethod(plan_record)
    decode = staticmethod(plan_from_record)

    # -- plan add-on links -----------------------------------------------------------------------
    @staticmethod
    def _link_record(link: PlanAddon) -> dict[str, Any]:
        return {
            "pk": f"PLAN#{link.plan_id}",
            "sk": f"ADDON#{link.addon_id}",
            "id": link.id,
            "plan_id": link.plan_id,
            "addon_id": link.addon_id,
            "name": link.name,
            "description": link.description,
            "labels": link.labels,
            "from_plan_phase": link.from_plan_phase,
            "max_quantity": link.max_quantity,
            "created_at": format_rfc3339(link.created_at),
            "updated_at": format_rfc3339(link.updated_at),
        }

    @staticmethod
    def _link_from(rec: dict[str, Any]) -> PlanAddon:
        return PlanAddon(
            id=rec["id"],
            plan_id=rec["plan_id"],
            addon_id=rec["addon_id"],
            name=rec["name"],
            description=rec.get("description"),
            labels=rec.get("labels"),
            from_plan_phase=rec["from_plan_phase"],
            max_quantity=int(rec["max_quantity"]) if rec.get("max_quantity") is not None else None,
            created_at=parse_rfc3339(rec["created_at"]),
            updated_at=parse_rfc3339(rec["updated_at"]),
        )

    def _plan_is_draft(self, plan_id: str, rev: int) -> dict[str, Any]:
        # The plan must still be the draft revision the caller read (links change only on drafts).
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": self._key(plan_id),
                "ConditionExpression": "rev = :rev AND attribute_not_exists(effective_from)",
                "ExpressionAttributeValues": {":rev": to_value(rev)},
            }
        }

    def put_link(self, link: PlanAddon, plan_rev: int, new: bool) -> None:
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(self._link_record(link))}
        put["ConditionExpression"] = "attribute_not_exists(pk)" if new else "attribute_exists(pk)"
        self._transact([{"Put": put}, self._plan_is_draft(link.plan_id, plan_rev)], WriteConflict)

    def delete_link(self, link: PlanAddon, plan_rev: int) -> None:
        key = to_item({"pk": f"PLAN#{link.plan_id}", "sk": f"ADDON#{link.addon_id}"})
        self._transact(
            [
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": key,
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
                self._plan_is_draft(link.plan_id, plan_rev),
            ],
            WriteConflict,
        )

    def links(self, plan_id: str) -> list[PlanAddon]:
        items = query_all(
            self.client,
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": to_value(f"PLAN#{plan_id}"), ":s": to_value("ADDON#")},
            ConsistentRead=True,
        )
        return sorted((self._link_from(from_item(i)) for i in items), key=lambda x: (x.created_at, x.id))


class AddonRepository(VersionedRepository[Addon]):
    prefix = "ADDON"
    encode = staticmethod(addon_record)
    decode = staticmethod(addon_from_record)


# -- tax codes ------------------------------------------------------------------------------------
DEFAULTS_KEY = {"pk": "TAXDEFAULTS", "sk": "TAXDEFAULTS"}


def _tax_record(t: TaxCode) -> dict[str, Any]:
    return {
        "pk": f"TAXCODE#{t.id}",
        "sk": "TAXCODE",
        "gsi1pk": "TAXCODE",
        "gsi1sk": f"{format_rfc3339(t.created_at)}#{t.id}",
        "id": t.id,
        "key": t.key,
        "name": t.name,
        "description": t.description,
        "labels": t.labels,
        "app_mappings": [{"app_type": m.app_type.value, "tax_code": m.tax_code} for m in t.app_mappings],
        "system": t.system,
        "created_at": format_rfc3339(t.created_at),
        "updated_at": format_rfc3339(t.updated_at),
        "deleted_at": format_rfc3339(t.deleted_at) if t.deleted_at else None,
    }


def _tax_from(rec: dict[str, Any]) -> TaxCode:
    return TaxCode(
        id=rec["id"],
        key=rec["key"],
        name=rec["name"],
        description=rec.get("description"),
        labels=rec.get("labels"),
        app_mappings=tuple(AppMapping(AppType(m["app_type"]), m["tax_code"]) for m in rec["app_mappings"]),
        system=bool(rec.get("system")),
        created_at=parse_rfc3339(rec["created_at"]),
        updated_at=parse_rfc3339(rec["updated_at"]),
        deleted_at=_dt(rec, "deleted_at"),
    )


_LIVE = "attribute_exists(pk) AND attribute_not_exists(deleted_at)"
_NOT_A_DEFAULT = "attribute_not_exists(pk) OR (invoicing_id <> :id AND credit_grant_id <> :id)"


class TaxCodeRepository(TableRepository):
    def _key(self, tax_id: str) -> dict[str, Any]:
        return to_item({"pk": f"TAXCODE#{tax_id}", "sk": "TAXCODE"})

    def _claim(self, key: str) -> dict[str, Any]:
        return to_item({"pk": f"TAXCODEKEY#{key}", "sk": "TAXCODEKEY"})

    def create(self, code: TaxCode) -> None:
        """The code and its key claim (WriteConflict if the key is taken; idempotent for system codes)."""
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**self._claim(code.key), **to_item({"id": code.id})},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_tax_record(code)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ],
            WriteConflict,
        )

    def update(self, code: TaxCode) -> None:
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_tax_record(code)),
                        "ConditionExpression": f"{_LIVE} AND #sys = :f",
                        "ExpressionAttributeNames": {"#sys": "system"},
                        "ExpressionAttributeValues": {":f": to_value(False)},
                    }
                }
            ],
            WriteConflict,
        )

    def delete(self, code: TaxCode) -> None:
        """Soft delete and release the key, unless a default names it (checked in the same transaction)."""
        self._transact(
            [
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": to_item(_tax_record(code)),
                        "ConditionExpression": f"{_LIVE} AND #sys = :f",
                        "ExpressionAttributeNames": {"#sys": "system"},
                        "ExpressionAttributeValues": {":f": to_value(False)},
                    }
                },
                {
                    "Delete": {
                        "TableName": self.table,
                        "Key": self._claim(code.key),
                        "ConditionExpression": "id = :id",
                        "ExpressionAttributeValues": {":id": to_value(code.id)},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": to_item(DEFAULTS_KEY),
                        "ConditionExpression": _NOT_A_DEFAULT,
                        "ExpressionAttributeValues": {":id": to_value(code.id)},
                    }
                },
            ],
            WriteConflict,
        )

    def get(self, tax_id: str) -> TaxCode | None:
        resp = self.client.get_item(TableName=self.table, Key=self._key(tax_id), ConsistentRead=True)
        return _tax_from(from_item(resp["Item"])) if "Item" in resp else None

    def id_for_key(self, key: str) -> str | None:
        resp = self.client.get_item(TableName=self.table, Key=self._claim(key), ConsistentRead=True)
        return str(from_item(resp["Item"])["id"]) if "Item" in resp else None

    def list_all(self, include_deleted: bool = False) -> list[TaxCode]:
        kwargs: dict[str, Any] = {}
        if not include_deleted:
            kwargs["FilterExpression"] = "attribute_not_exists(deleted_at)"
        items = query_all(
            self.client,
            TableName=self.table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": to_value("TAXCODE")},
            **kwargs,
        )
        return [_tax_from(from_item(i)) for i in items]

    # -- organisation defaults -------------------------------------------------------------------
    def defaults(self) -> DefaultTaxCodes | None:
        resp = self.client.get_item(TableName=self.table, Key=to_item(DEFAULTS_KEY), ConsistentRead=True)
        if "Item" not in resp:
            return None
        rec = from_item(resp["Item"])
        return DefaultTaxCodes(
            rec["invoicing_id"],
            rec["credit_grant_id"],
            parse_rfc3339(rec["created_at"]),
            parse_rfc3339(rec["updated_at"]),
        )

    def put_defaults(self, defaults: DefaultTaxCodes, previous: DefaultTaxCodes | None) -> None:
        """Replace the defaults (conditional on the ones read) while every code they name is live."""
        rec = {
            **DEFAULTS_KEY,
            "invoicing_id": defaults.invoicing_id,
            "credit_grant_id": defaults.credit_grant_id,
            "created_at": format_rfc3339(defaults.created_at),
            "updated_at": format_rfc3339(defaults.updated_at),
        }
        put: dict[str, Any] = {"TableName": self.table, "Item": to_item(rec)}
        if previous is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "updated_at = :u"
            put["ExpressionAttributeValues"] = {":u": to_value(format_rfc3339(previous.updated_at))}
        checks = [
            {"ConditionCheck": {"TableName": self.table, "Key": self._key(i), "ConditionExpression": _LIVE}}
            for i in sorted(defaults.ids())
        ]
        self._transact([{"Put": put}, *checks], WriteConflict)

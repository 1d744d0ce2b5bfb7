"""Stripe invoicing: the `InvoicingApp` port on Stripe's API (OpenMeter's Stripe app).

One Stripe invoice per Meterline invoice, one invoice item per line:
- the invoice: the customer's Stripe customer (`app_data.stripe.customer_id`), the currency,
  `collection_method` from the profile's workflow (`send_invoice` with `days_until_due` from
  `due_after`), `auto_advance=false` while it is a draft (Meterline decides when it is issued),
  `pending_invoice_items_behavior=exclude` (only this invoice's items), metadata `om_invoice_id`;
- an item per line: `amount` = the line's total in the currency's minor units (exact: the total is
  rounded to the currency's ISO 4217 precision, so `total * 10^precision` is an integer; credits
  applied at issue are in it), a description naming the line and its service period, `period`, and
  metadata `om_line_id`;
- finalize (at issue): the items are brought to the issued amounts, then `finalize` with
  `auto_advance=true`: Stripe collects it and reports the outcome through the webhook.

Idempotency. Every write carries an `Idempotency-Key` derived from (invoice id, sync attempt, line
id, operation, a digest of the parameters), so a run that crashed after Stripe answered and before
the answer was stored repeats the same requests and gets Stripe's stored answers: no duplicate
invoice or item. The digest makes a changed request (new amounts after a re-snapshot, credits at
issue) a new one rather than an idempotency error; the attempt (counted when Stripe refuses a
sync) makes a retry a new request, since Stripe replays a key's stored failure. Stripe keeps keys for
24 hours: a run repeated later finds the ids stored with the invoice and updates, never creates.

Errors: Stripe refusing the request (invalid request, authentication, permission, idempotency) is
`InvoicingRejected` with Stripe's message; no answer (network, rate limit, 5xx) is
`InvoicingUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import stripe

from shared.billing.models import CollectionMethod
from shared.core import durations
from shared.core.errors import InvalidInput
from shared.invoices.models import ExternalIds, Invoice, Line, ValidationIssue
from shared.invoices.ports import InvoicingRejected, InvoicingUnavailable
from shared.rating.money import currency_precision

STRIPE_TIMEOUT_S = 8
CUSTOMER_FIELD = "app_data.stripe.customer_id"
INVOICE_METADATA = "om_invoice_id"
LINE_METADATA = "om_line_id"


def minor_units(amount: Decimal, currency: str) -> int:
    """`12.34` USD -> 1234; `1500` JPY -> 1500. Exact: a fractional minor unit is a bug, not a rounding."""
    scaled = amount.scaleb(currency_precision(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} {currency} is not a whole number of minor units")
    return int(scaled)


def _ts(at: datetime) -> int:
    return int(at.timestamp())


def _digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextmanager
def _stripe_errors(synced: Callable[[], ExternalIds | None] = lambda: None) -> Iterator[None]:
    try:
        yield
    except (
        stripe.InvalidRequestError,
        stripe.AuthenticationError,
        stripe.PermissionError,
        stripe.IdempotencyError,
        stripe.CardError,
    ) as exc:
        param = getattr(exc, "param", None)
        raise InvoicingRejected(f"Stripe: {exc.user_message or str(exc)}", param, synced()) from exc
    except stripe.StripeError as exc:  # connection, rate limit, Stripe's 5xx: ask again later
        raise InvoicingUnavailable(f"Stripe did not answer: {exc}") from exc


class StripeInvoicing:
    """`customer_of(customer_id)`: the customer's Stripe customer id (None: not set)."""

    def __init__(
        self, api_key: str, customer_of: Callable[[str], str | None], api_base: str | None = None
    ) -> None:
        self.api_key = api_key
        self.customer_of = customer_of
        self.api_base = api_base

    def _client(self) -> stripe.StripeClient:
        # Bounded: an API request has 29 s (API Gateway); Stripe's default timeout is 80 s. One retry
        # of a failed connection (Stripe's client resends the same idempotency key).
        kwargs: dict[str, Any] = {
            "max_network_retries": 1,
            "http_client": stripe.new_default_http_client(timeout=STRIPE_TIMEOUT_S),
        }
        if self.api_base:
            kwargs["base_addresses"] = {"api": self.api_base}
        return stripe.StripeClient(self.api_key, **kwargs)

    @staticmethod
    def _key(
        inv: Invoice, ids: ExternalIds, part: str, operation: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        attempt = ids.attempt
        digest = _digest(params) if params is not None else "-"
        return {"idempotency_key": f"meterline/{inv.id}/{attempt}/{part}/{operation}/{digest}"}

    # -- validation ---------------------------------------------------------------------------------
    def validate(self, invoice: Invoice) -> list[ValidationIssue]:
        if self.customer_of(invoice.customer_id):
            return []
        return [
            ValidationIssue(
                "stripe_customer_id_missing",
                f"the customer has no Stripe customer id: set {CUSTOMER_FIELD} "
                "(PUT /customers/{customerId}/billing/app-data)",
                field=CUSTOMER_FIELD,
            )
        ]

    def _customer(self, invoice: Invoice) -> str:
        customer = self.customer_of(invoice.customer_id)
        if not customer:
            raise InvoicingRejected(
                f"the customer has no Stripe customer id ({CUSTOMER_FIELD})", CUSTOMER_FIELD
            )
        return customer

    # -- parameters ---------------------------------------------------------------------------------
    @staticmethod
    def _invoice_params(inv: Invoice) -> dict[str, Any]:
        workflow = inv.profile.workflow if inv.profile else None
        method = workflow.collection_method if workflow else CollectionMethod.CHARGE_AUTOMATICALLY
        params: dict[str, Any] = {
            "collection_method": method.value,
            "auto_advance": False,
            "metadata": {INVOICE_METADATA: inv.id, "om_customer_id": inv.customer_id},
        }
        if method is CollectionMethod.SEND_INVOICE and workflow is not None:
            # Whole days from the payment terms (P30D -> 30), at least one (Stripe's minimum).
            due = durations.step(inv.created_at, workflow.due_after, 1)
            params["days_until_due"] = max(1, (due - inv.created_at).days)
        return params

    @staticmethod
    def _item_params(inv: Invoice, line: Line) -> dict[str, Any]:
        p = line.period
        return {
            "amount": minor_units(line.totals.total, inv.currency),
            "description": f"{line.billable.name} ({p.start:%Y-%m-%d %H:%M} - {p.end:%Y-%m-%d %H:%M} UTC)",
            "period": {"start": _ts(p.start), "end": _ts(p.end)},
            "metadata": {LINE_METADATA: line.id, INVOICE_METADATA: inv.id},
        }

    # -- the port -----------------------------------------------------------------------------------
    def sync_draft(self, invoice: Invoice) -> ExternalIds:
        """Create the Stripe draft (or update the one stored) and one item per line; delete items of
        lines no longer on the invoice. Returns every id, to be stored with the invoice."""
        customer = self._customer(invoice)
        client = self._client()
        ids = invoice.external_ids or ExternalIds()
        inv_params = self._invoice_params(invoice)
        with _stripe_errors(lambda: ids):
            if ids.invoicing is not None and not self._update_invoice(client, invoice, ids, inv_params):
                # Deleted in Stripe (by hand, or a delete whose Meterline side was not stored): a new
                # one, whose items are new too (a new attempt: the first creation's key would replay
                # the deleted invoice).
                ids = ExternalIds(attempt=ids.attempt + 1)
            if ids.invoicing is None:
                params = {
                    **inv_params,
                    "customer": customer,
                    "currency": invoice.currency.lower(),
                    "pending_invoice_items_behavior": "exclude",
                }
                created = client.v1.invoices.create(
                    params=params,  # type: ignore[arg-type]
                    options=self._key(invoice, ids, "-", "invoice.create", params),  # type: ignore[arg-type]
                )
                ids = replace(ids, invoicing=str(created.id), payment=str(created.id))
        stripe_invoice = ids.invoicing
        items = dict(ids.lines)

        def partial() -> ExternalIds:
            return replace(ids, lines=dict(items))

        with _stripe_errors(partial):
            for line in invoice.lines:
                params = self._item_params(invoice, line)
                existing = items.get(line.id)
                if existing is None:
                    create = {
                        **params,
                        "customer": customer,
                        "invoice": stripe_invoice,
                        "currency": invoice.currency.lower(),
                    }
                    item = client.v1.invoice_items.create(
                        params=create,  # type: ignore[arg-type]
                        options=self._key(invoice, ids, line.id, "item.create", create),  # type: ignore[arg-type]
                    )
                    items[line.id] = str(item.id)
                else:
                    client.v1.invoice_items.update(
                        existing,
                        params=params,  # type: ignore[arg-type]
                        options=self._key(invoice, ids, line.id, "item.update", params),  # type: ignore[arg-type]
                    )
            current = {line.id for line in invoice.lines}
            for line_id in sorted(set(items) - current):
                self._delete_item(client, items[line_id])
                del items[line_id]
        return partial()

    def _update_invoice(
        self, client: stripe.StripeClient, invoice: Invoice, ids: ExternalIds, params: dict[str, Any]
    ) -> bool:
        """Update the stored Stripe draft; False when Stripe no longer has it."""
        assert ids.invoicing is not None
        try:
            client.v1.invoices.update(
                ids.invoicing,
                params=params,  # type: ignore[arg-type]
                options=self._key(invoice, ids, "-", "invoice.update", params),  # type: ignore[arg-type]
            )
        except stripe.InvalidRequestError as exc:
            if exc.code == "resource_missing":
                return False
            raise
        return True

    @staticmethod
    def _delete_item(client: stripe.StripeClient, item_id: str) -> None:
        try:
            client.v1.invoice_items.delete(item_id)
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_missing":  # deleted already (a repeat after a crash)
                raise

    def finalize(self, invoice: Invoice) -> ExternalIds:
        """The items at the issued amounts, then finalized: Stripe collects from here on."""
        ids = self.sync_draft(invoice)
        assert ids.invoicing is not None
        params = {"auto_advance": True}
        with _stripe_errors(lambda: ids):
            final = self._client().v1.invoices.finalize_invoice(
                ids.invoicing,
                params=params,  # type: ignore[arg-type]
                options=self._key(invoice, ids, "-", "invoice.finalize", params),  # type: ignore[arg-type]
            )
        return replace(ids, number=final.number, hosted_url=final.hosted_invoice_url)

    def void(self, invoice: Invoice) -> None:
        ids = invoice.external_ids
        if ids is None or ids.invoicing is None:
            return
        with _stripe_errors():
            self._client().v1.invoices.void_invoice(
                ids.invoicing,
                options=self._key(invoice, ids, "-", "invoice.void"),  # type: ignore[arg-type]
            )

    def delete_draft(self, invoice: Invoice) -> None:
        ids = invoice.external_ids
        if ids is None or ids.invoicing is None:
            return
        with _stripe_errors():
            try:
                self._client().v1.invoices.delete(ids.invoicing)
            except stripe.InvalidRequestError as exc:
                if exc.code != "resource_missing":  # deleted already
                    raise


# -- the webhook --------------------------------------------------------------------------------------
SIGNATURE_HEADER = "Stripe-Signature"


@dataclass(frozen=True)
class StripeEvent:
    """What the invoice lifecycle reads from a verified Stripe event."""

    id: str
    type: str
    stripe_invoice_id: str | None  # the event's object when it is an invoice
    invoice_id: str | None  # its metadata `om_invoice_id`: the Meterline invoice


def verify_event(payload: str, signature: str | None, secret: str) -> StripeEvent:
    """The event, once its `Stripe-Signature` (HMAC of the raw body with the endpoint's signing secret,
    timestamped: five minutes' tolerance against replays) checks out; InvalidInput naming the header
    otherwise. Stripe's own verification (`stripe.Webhook.construct_event`)."""
    try:
        event = stripe.Webhook.construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise InvalidInput.field(
            SIGNATURE_HEADER, f"not a valid Stripe signature: {exc}", source="header"
        ) from exc
    except ValueError as exc:  # not JSON
        raise InvalidInput.field("body", f"not a Stripe event: {exc}") from exc
    doc: dict[str, Any] = event.to_dict()
    obj = (doc.get("data") or {}).get("object") or {}
    is_invoice = obj.get("object") == "invoice"
    metadata = (obj.get("metadata") or {}) if is_invoice else {}
    return StripeEvent(
        id=str(doc.get("id")),
        type=str(doc.get("type")),
        stripe_invoice_id=str(obj["id"]) if is_invoice and obj.get("id") else None,
        invoice_id=metadata.get(INVOICE_METADATA),
    )

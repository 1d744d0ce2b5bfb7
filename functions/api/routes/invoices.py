"""Invoices (the shared invoice spec, beyond the contract): list, get, lifecycle actions, delete,
invoice now and the gathering invoices of a customer. Parse, call, render."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import app, body, json_response, no_content, query_params
from shared import bootstrap
from shared.billing.models import AppType
from shared.core.errors import NotFound, Unavailable
from shared.invoices import requests, views
from shared.invoices.models import Invoice
from shared.invoices.states import Action

router = APIGatewayRouter()


def _render(inv: Invoice) -> dict[str, Any]:
    now = bootstrap.invoices().now_for(inv.customer_id)
    documents = bootstrap.invoice_documents()
    links = None
    if documents is not None and inv.issued_at is not None and not inv.gathering:
        links = documents.links(views.invoice(inv), now)
    return views.invoice(inv, links, now=now)


@router.get("/invoices")
def list_invoices() -> Response:
    query = requests.list_invoices(query_params())
    listed = bootstrap.invoices().list_invoices(query)
    return json_response(200, views.page(query.page, listed, datetime.now(UTC)))


@router.get("/invoices/<invoice_id>")
def get_invoice(invoice_id: str) -> Response:
    return json_response(200, _render(bootstrap.invoices().get(requests.path_id(unquote(invoice_id)))))


@router.delete("/invoices/<invoice_id>")
def delete_invoice(invoice_id: str) -> Response:
    bootstrap.invoices().act(requests.path_id(unquote(invoice_id)), Action.DELETE)
    return no_content()


def _action(invoice_id: str, action: str) -> Response:
    inv = bootstrap.invoices().act(requests.path_id(unquote(invoice_id)), requests.ACTIONS[action])
    return json_response(200, _render(inv))


@router.post("/invoices/<invoice_id>/approve")
def approve_invoice(invoice_id: str) -> Response:
    return _action(invoice_id, "approve")


@router.post("/invoices/<invoice_id>/advance")
def advance_invoice(invoice_id: str) -> Response:
    return _action(invoice_id, "advance")


@router.post("/invoices/<invoice_id>/retry")
def retry_invoice(invoice_id: str) -> Response:
    return _action(invoice_id, "retry")


@router.post("/invoices/<invoice_id>/void")
def void_invoice(invoice_id: str) -> Response:
    return _action(invoice_id, "void")


@router.post("/invoices/<invoice_id>/snapshot-quantities")
def snapshot_quantities(invoice_id: str) -> Response:
    return _action(invoice_id, "snapshot-quantities")


@router.post("/apps/external-invoicing/invoices/<invoice_id>/payment-status")
def report_payment(invoice_id: str) -> Response:
    svc = bootstrap.invoices()
    inv = svc.report_payment(requests.path_id(unquote(invoice_id)), requests.payment_status(body()))
    return json_response(200, _render(inv))


@router.post("/apps/<app_id>/stripe/webhook")
def stripe_webhook(app_id: str) -> Response:
    """Stripe's invoice events (OpenMeter's `POST /api/v1/apps/{id}/stripe/webhook`). No bearer token
    (Stripe has none): the `Stripe-Signature` over the raw body with the signing secret is the
    authentication (400 when it does not check out). 200 for everything Stripe need not send again:
    applied, a redelivery, an event the invoice is already past, an event type or invoice that is not
    Meterline's (`status` says which)."""
    found = bootstrap.apps().get(unquote(app_id))
    if found.type is not AppType.STRIPE:
        raise NotFound(f"App [{found.id}] is not a Stripe app")
    secret = bootstrap.stripe_webhook_secret()
    if not secret:
        raise Unavailable("no Stripe webhook signing secret is configured (STRIPE_WEBHOOK_SECRET)")
    from shared.invoices.stripe_invoicing import SIGNATURE_HEADER, verify_event  # stripe: on this path only

    request = app.current_event
    event = verify_event(request.decoded_body or "", request.headers.get(SIGNATURE_HEADER), secret)
    status, inv = bootstrap.invoices().apply_app_event(
        event.id, event.type, event.stripe_invoice_id or "", event.invoice_id
    )
    out: dict[str, Any] = {"event_id": event.id, "type": event.type, "status": status}
    if inv is not None:
        out["invoice"] = {"id": inv.id, "extended_status": inv.extended_status}
    return json_response(200, out)


@router.post("/customers/<customer_id>/invoices/invoice-now")
def invoice_now(customer_id: str) -> Response:
    created = bootstrap.invoices().invoice_now(requests.customer_ref(unquote(customer_id)))
    return json_response(201, [_render(inv) for inv in created])


@router.get("/customers/<customer_id>/invoices/gathering")
def gathering(customer_id: str) -> Response:
    found = bootstrap.invoices().gathering_of(requests.customer_ref(unquote(customer_id)))
    return json_response(200, {"data": [_render(inv) for inv in found]})

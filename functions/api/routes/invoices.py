"""Invoices (the shared invoice spec, beyond the contract): list, get, lifecycle actions, delete,
invoice now and the gathering invoices of a customer. Parse, call, render."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, no_content, query_params
from shared import bootstrap
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


@router.post("/customers/<customer_id>/invoices/invoice-now")
def invoice_now(customer_id: str) -> Response:
    created = bootstrap.invoices().invoice_now(requests.customer_ref(unquote(customer_id)))
    return json_response(201, [_render(inv) for inv in created])


@router.get("/customers/<customer_id>/invoices/gathering")
def gathering(customer_id: str) -> Response:
    found = bootstrap.invoices().gathering_of(requests.customer_ref(unquote(customer_id)))
    return json_response(200, {"data": [_render(inv) for inv in found]})

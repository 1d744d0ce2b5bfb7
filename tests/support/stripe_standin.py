"""A stand-in for Stripe's invoicing API on loopback, strict where Stripe is:

- every request is checked against Stripe's OpenAPI spec (/work/shared/stripe/spec3.2022-04-12.json):
  the path and method exist, form parameters are the operation's (no unknown names, types and enums
  as declared, required ones present); a violation is Stripe's 400 `parameter_unknown` /
  `parameter_invalid`, so a request Stripe would refuse fails the test;
- `Idempotency-Key` as Stripe honours it: the same key with the same parameters replays the stored
  response (nothing executes twice); with other parameters it is a 400 `idempotency_error`;
- objects are built from Stripe's fixtures (/work/shared/stripe/fixtures3.json) with the state this
  stand-in keeps (invoices: draft -> open -> void/paid; items attached to a draft invoice);
- `fail_next` makes the next requests a 503 (`Stripe-Should-Retry: false`, so the client does not
  wait to retry): Stripe unreachable.

`Stripe.webhook(...)` signs an event the way Stripe does (`Stripe-Signature: t=...,v1=HMAC-SHA256`).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

ROOT = Path("/work/shared/stripe")
API_KEY = "sk_test_51MeterlineInvoicing000000000wxyz"
ACCOUNT = "acct_1MeterlineInvoice"
WEBHOOK_SECRET = "whsec_meterline_test_secret"
# Parameters newer than the 2022-04-12 spec that the installed client's API version accepts.
NEWER_THAN_SPEC = {("post", "/v1/invoices"): {"currency"}}


@cache
def _spec() -> dict[str, Any]:
    with (ROOT / "spec3.2022-04-12.json").open() as f:
        spec: dict[str, Any] = json.load(f)
    return spec


@cache
def _fixtures() -> dict[str, Any]:
    with (ROOT / "fixtures3.json").open() as f:
        resources: dict[str, Any] = json.load(f)["resources"]
    return resources


class StripeError(Exception):
    def __init__(
        self, status: int, type_: str, message: str, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.type, self.message, self.param, self.code = status, type_, message, param, code

    def body(self) -> dict[str, Any]:
        err = {"type": self.type, "message": self.message}
        if self.param:
            err["param"] = self.param
        if self.code:
            err["code"] = self.code
        return {"error": err}


def _operation(method: str, path: str) -> tuple[str, dict[str, Any]]:
    for template, ops in _spec()["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method in ops:
            return template, ops[method]
    raise StripeError(404, "invalid_request_error", f"Unrecognized request URL ({method.upper()}: {path})")


def _nest(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """`period[start]=1` -> {"period": {"start": "1"}} (Stripe's form encoding)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _check(value: Any, schema: dict[str, Any], name: str) -> None:
    if "anyOf" in schema:
        errors = []
        for option in schema["anyOf"]:
            try:
                _check(value, option, name)
                return
            except StripeError as exc:
                errors.append(exc)
        raise errors[0]
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            raise StripeError(
                400, "invalid_request_error", f"Invalid object: {name}", name, "parameter_invalid"
            )
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, sub in value.items():
            if key in props:
                _check(sub, props[key], f"{name}[{key}]")
            elif extra is False:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"Received unknown parameter: {name}[{key}]",
                    name,
                    "parameter_unknown",
                )
            elif isinstance(extra, dict):
                _check(sub, extra, f"{name}[{key}]")
        for key in schema.get("required", []):
            if key not in value:
                raise StripeError(
                    400,
                    "invalid_request_error",
                    f"Missing required param: {name}[{key}].",
                    name,
                    "parameter_missing",
                )
        return
    if not isinstance(value, str):
        raise StripeError(
            400, "invalid_request_error", f"Invalid value for {name}", name, "parameter_invalid"
        )
    if kind == "integer" and not re.fullmatch(r"-?\d+", value):
        raise StripeError(
            400, "invalid_request_error", f"Invalid integer: {value}", name, "parameter_invalid_integer"
        )
    if kind == "boolean" and value not in ("true", "false"):
        raise StripeError(
            400, "invalid_request_error", f"Invalid boolean: {value}", name, "parameter_invalid"
        )
    if "enum" in schema and value not in schema["enum"]:
        raise StripeError(
            400, "invalid_request_error", f"Invalid {name}: must be one of {schema['enum']}", name
        )
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        raise StripeError(400, "invalid_request_error", f"{name} is too long", name, "parameter_invalid")


def validate(method: str, path: str, form: dict[str, Any]) -> None:
    """The request against Stripe's OpenAPI spec: StripeError (Stripe's 400/404) when it would refuse."""
    template, op = _operation(method, path)
    body = (op.get("requestBody") or {}).get("content", {}).get("application/x-www-form-urlencoded", {})
    schema = copy.deepcopy(body.get("schema", {"type": "object", "properties": {}}))
    for name in NEWER_THAN_SPEC.get((method, template), set()):
        schema["properties"].setdefault(name, {"type": "string"})
    _check(form, schema, "body")


class State:
    """What Stripe holds: invoices, invoice items, the stored idempotent responses."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.customers = {"cus_known1": "usd", "cus_known2": "usd"}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, tuple[str, int, dict[str, Any]]] = {}  # key -> (request digest, status, body)
        self.requests: list[tuple[str, str, dict[str, Any], str | None]] = []  # executed (not replays)
        self.invalid: list[tuple[str, str, str]] = []  # refused by the spec check (must stay empty)
        self.replays = 0
        self.fail_next = 0
        self.refuse_finalize = ""  # set: finalize is refused with this message
        self.n = 0

    def _id(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_1Meterline{self.n:06d}"

    def invoice_of(self, invoice_id: str) -> dict[str, Any]:
        found = self.invoices.get(invoice_id)
        if found is None:
            raise StripeError(
                404, "invalid_request_error", f"No such invoice: '{invoice_id}'", "id", "resource_missing"
            )
        return found

    def _total(self, inv: dict[str, Any]) -> None:
        lines = [i for i in self.items.values() if i["invoice"] == inv["id"]]
        total = sum(int(i["amount"]) for i in lines)
        inv.update(subtotal=total, total=total, amount_due=total, amount_remaining=total - inv["amount_paid"])
        inv["lines"] = {"object": "list", "data": [], "has_more": False, "total_count": len(lines), "url": ""}

    def execute(self, method: str, path: str, form: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")[1:]  # without v1
        if method == "post" and parts == ["invoices"]:
            if form["customer"] not in self.customers:
                raise StripeError(
                    400, "invalid_request_error", f"No such customer: '{form['customer']}'", "customer"
                )
            inv = copy.deepcopy(_fixtures()["invoice"])
            inv.update(
                id=self._id("in"),
                customer=form["customer"],
                currency=form.get("currency", "usd"),
                collection_method=form.get("collection_method", "charge_automatically"),
                auto_advance=form.get("auto_advance") == "true",
                metadata=form.get("metadata", {}),
                status="draft",
                number=None,
                hosted_invoice_url=None,
                amount_paid=0,
                days_until_due=int(form["days_until_due"]) if "days_until_due" in form else None,
            )
            self.invoices[inv["id"]] = inv
            self._total(inv)
            return inv
        if parts[0] == "invoices" and len(parts) == 2:
            inv = self.invoice_of(parts[1])
            if method == "delete":
                if inv["status"] != "draft":
                    raise StripeError(400, "invalid_request_error", "You can only delete draft invoices.")
                del self.invoices[inv["id"]]
                for item_id in [k for k, i in self.items.items() if i["invoice"] == inv["id"]]:
                    del self.items[item_id]
                return {"id": inv["id"], "object": "invoice", "deleted": True}
            if inv["status"] != "draft":
                raise StripeError(400, "invalid_request_error", "Finalized invoices can't be edited.")
            inv.update(
                collection_method=form.get("collection_method", inv["collection_method"]),
                metadata={**inv["metadata"], **form.get("metadata", {})},
            )
            return inv
        if parts[0] == "invoices" and len(parts) == 3:
            inv = self.invoice_of(parts[1])
            if parts[2] == "finalize":
                if self.refuse_finalize:
                    raise StripeError(400, "invalid_request_error", self.refuse_finalize)
                if inv["status"] != "draft":
                    raise StripeError(400, "invalid_request_error", "This invoice is already finalized.")
                number = f"MLTEST-{sum(1 for i in self.invoices.values() if i['number']) + 1:04d}"
                inv.update(
                    status="open",
                    number=number,
                    auto_advance=form.get("auto_advance") == "true",
                    hosted_invoice_url=f"https://invoice.stripe.com/i/{inv['id']}",
                )
                return inv
            if parts[2] == "void":
                if inv["status"] != "open":
                    raise StripeError(400, "invalid_request_error", "You can only void open invoices.")
                inv["status"] = "void"
                return inv
        if parts == ["invoiceitems"] and method == "post":
            inv = self.invoice_of(form["invoice"])
            if inv["status"] != "draft":
                raise StripeError(
                    400, "invalid_request_error", "Invoice items can only be added to draft invoices."
                )
            if form["customer"] != inv["customer"]:
                raise StripeError(400, "invalid_request_error", "The invoice's customer differs.", "customer")
            item = copy.deepcopy(_fixtures()["invoiceitem"])
            item.update(
                id=self._id("ii"),
                amount=int(form["amount"]),
                currency=form["currency"],
                customer=form["customer"],
                invoice=inv["id"],
                description=form.get("description"),
                metadata=form.get("metadata", {}),
                period={k: int(v) for k, v in form.get("period", {}).items()},
            )
            self.items[item["id"]] = item
            self._total(inv)
            return item
        if parts[0] == "invoiceitems" and len(parts) == 2:
            item = self.items.get(parts[1])
            if item is None:
                raise StripeError(
                    404,
                    "invalid_request_error",
                    f"No such invoiceitem: '{parts[1]}'",
                    "id",
                    "resource_missing",
                )
            inv = self.invoice_of(item["invoice"])
            if inv["status"] != "draft":
                raise StripeError(400, "invalid_request_error", "Finalized invoices can't be edited.")
            if method == "delete":
                del self.items[item["id"]]
                self._total(inv)
                return {"id": item["id"], "object": "invoiceitem", "deleted": True}
            if "amount" in form:
                item["amount"] = int(form["amount"])
            item.update(
                description=form.get("description", item["description"]),
                metadata={**item["metadata"], **form.get("metadata", {})},
                period={k: int(v) for k, v in form.get("period", {}).items()} or item["period"],
            )
            self._total(inv)
            return item
        raise StripeError(
            404, "invalid_request_error", f"Unrecognized request URL ({method.upper()}: {path})"
        )


class _Handler(BaseHTTPRequestHandler):
    state: State

    def _handle(self, method: str) -> None:
        st = self.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        path = self.path.split("?")[0]
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            return self._send(401, {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}})
        if method == "get" and path == "/v1/account":
            return self._send(200, {"id": ACCOUNT, "object": "account"})
        with st.lock:
            if st.fail_next > 0:
                st.fail_next -= 1
                return self._send(503, {"error": {"type": "api_error", "message": "Stripe is down"}})
            form = _nest(parse_qsl(raw, keep_blank_values=True))
            key = self.headers.get("Idempotency-Key")
            digest = hashlib.sha256(f"{method} {path} {raw}".encode()).hexdigest()
            if key is not None and key in st.keys:
                stored_digest, status, body = st.keys[key]
                if stored_digest != digest:
                    err = StripeError(
                        400,
                        "idempotency_error",
                        "Keys for idempotent requests can only be used with the same parameters they "
                        "were first used with.",
                    )
                    return self._send(400, err.body())
                st.replays += 1
                return self._send(status, body)
            try:
                validate(method, path, form)
                st.requests.append((method, path, form, key))
                status, body = 200, copy.deepcopy(st.execute(method, path, form))
            except StripeError as exc:
                if exc.code in (
                    "parameter_unknown",
                    "parameter_missing",
                    "parameter_invalid",
                    "parameter_invalid_integer",
                ):
                    # A request Stripe would refuse as malformed: the client built it wrong.
                    st.requests.append((method, path, form, key))
                status, body = exc.status, exc.body()
            if key is not None:
                st.keys[key] = (digest, status, body)
        self._send(status, body)

    def do_GET(self) -> None:
        self._handle("get")

    def do_POST(self) -> None:
        self._handle("post")

    def do_DELETE(self) -> None:
        self._handle("delete")

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 500:
            self.send_header("Stripe-Should-Retry", "false")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: Any) -> None:
        pass


class Stripe:
    def __init__(self, base: str, state: State) -> None:
        self.base, self.state = base, state

    def calls(self, method: str, path: str) -> list[dict[str, Any]]:
        """Executed requests (replays excluded) to `path` (a path ending in `/`: every path under it)."""
        return [
            form
            for m, p, form, _ in self.state.requests
            if m == method and (p == path or (path.endswith("/") and p.startswith(path)))
        ]

    def items_of(self, invoice_id: str) -> list[dict[str, Any]]:
        return sorted(
            (i for i in self.state.items.values() if i["invoice"] == invoice_id),
            key=lambda i: i["metadata"]["om_line_id"],
        )

    def event(
        self, event_type: str, invoice_id: str, event_id: str | None = None
    ) -> tuple[str, dict[str, str]]:
        """A signed delivery of `event_type` on the stored invoice: (body, headers)."""
        obj = copy.deepcopy(self.state.invoices[invoice_id])
        event = copy.deepcopy(_fixtures()["event"])
        self.state.n += 1
        event.update(
            id=event_id or f"evt_1Meterline{self.state.n:06d}",
            type=event_type,
            created=int(time.time()),
            data={"object": obj},
        )
        body = json.dumps(event)
        return body, {"Stripe-Signature": sign(body, WEBHOOK_SECRET), "Content-Type": "application/json"}


def sign(body: str, secret: str, at: int | None = None) -> str:
    """Stripe's signature header: `t=<unix time>,v1=<HMAC-SHA256 of "t.body" with the secret>`."""
    t = int(time.time()) if at is None else at
    mac = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


@contextmanager
def running() -> Iterator[Stripe]:
    state = State()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Stripe(f"http://127.0.0.1:{server.server_address[1]}", state)
    finally:
        server.shutdown()
        server.server_close()

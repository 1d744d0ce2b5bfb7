"""API Gateway (REST, v1 proxy integration) in front of the ingest and api handlers.

Each HTTP request becomes exactly the event API Gateway sends to a Lambda proxy integration,
routed like the CDK stack routes it; the handler's proxy response is written back. Handlers
run on the server's request threads, like concurrent Lambda invocations.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from local.handlers import Handler
from local.lambda_context import ACCOUNT_ID, new_context

log = logging.getLogger(__name__)

API_PREFIX = "/v3/openmeter"
STAGE = "local"
API_ID = "local"
MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway REST payload quota
ANY = "ANY"
GATEWAY_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")  # what ANY covers


@dataclass(frozen=True)
class Route:
    """One API Gateway resource + method. `resource` may end in `/{proxy+}` (greedy)."""

    resource: str
    method: str  # HTTP verb or "ANY"
    handler: Handler
    function_name: str

    @property
    def greedy(self) -> bool:
        return self.resource.endswith("/{proxy+}")

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """Return pathParameters ({} for a literal resource) or None when it does not match."""
        if self.method not in (ANY, method):
            return None
        if not self.greedy:
            return {} if path == self.resource else None
        base = self.resource.removesuffix("{proxy+}")
        if path.startswith(base) and len(path) > len(base):
            return {"proxy": unquote(path[len(base) :])}  # REST APIs decode path parameters...
        return None


def default_routes(ingest: Handler, api: Handler) -> list[Route]:
    """The CDK stack's API: POST /events -> ingest, everything else under the prefix -> api.

    Literal resources win over the greedy proxy, as in API Gateway.
    """
    return [
        Route(f"{API_PREFIX}/events", "POST", ingest, "meterline-ingest"),
        Route(f"{API_PREFIX}/events", ANY, api, "meterline-api"),
        Route(f"{API_PREFIX}/{{proxy+}}", ANY, api, "meterline-api"),
    ]


def resolve_route(routes: Sequence[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    for route in sorted(routes, key=lambda r: (r.greedy, r.method == ANY)):
        params = route.match(method, path)
        if params is not None:
            return route, params
    return None


def _parse_query(query: str) -> tuple[dict[str, str] | None, dict[str, list[str]] | None]:
    # Keys like `filter[key][eq]` arrive as-is; values are decoded but '+' stays '+' (API Gateway does that).
    if not query:
        return None, None
    multi: dict[str, list[str]] = {}
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        multi.setdefault(unquote(key), []).append(unquote(value))
    if not multi:
        return None, None
    return {k: v[-1] for k, v in multi.items()}, multi


def build_proxy_event(
    *,
    method: str,
    raw_path: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    source_ip: str,
    resource: str,
    path_parameters: dict[str, str] | None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The API Gateway REST proxy (payload v1) event for one request."""
    split = urlsplit(raw_path)
    path = split.path  # ...but keep `path` percent-encoded, as REST APIs do
    single, multi = _parse_query(split.query)
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    lower = {k.lower() for k in multi_headers}
    for name, value in (("X-Forwarded-For", source_ip), ("X-Forwarded-Proto", "http")):
        if name.lower() not in lower:
            multi_headers[name] = [value]
    single_headers = {k: v[-1] for k, v in multi_headers.items()}
    request_id = request_id or str(uuid.uuid4())
    now = now or datetime.now(UTC)
    if body:
        try:
            body_str: str | None = body.decode("utf-8")
            is_b64 = False
        except UnicodeDecodeError:
            body_str, is_b64 = base64.b64encode(body).decode("ascii"), True
    else:
        body_str, is_b64 = None, False
    host = single_headers.get("Host") or single_headers.get("host") or "127.0.0.1"
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single_headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": single,
        "multiValueQueryStringParameters": multi,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": path,
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": single_headers.get("User-Agent") or single_headers.get("user-agent"),
                "user": None,
            },
            "domainName": host,
            "apiId": API_ID,
        },
        "body": body_str,
        "isBase64Encoded": is_b64,
    }


def problem(status: int, title: str, detail: str, trace_id: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """A problem+json response in the API's Kong style, for requests no function handles."""
    payload = {
        "status": status,
        "title": title,
        "type": f"https://httpstatuses.com/{status}",
        "instance": f"kong:trace:{trace_id}",
        "detail": detail,
    }
    return status, [("Content-Type", "application/problem+json")], json.dumps(payload).encode()


def _gateway_error() -> tuple[int, list[tuple[str, str]], bytes]:
    # What API Gateway answers when the Lambda raises or returns a malformed response.
    return 502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}'


def proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Turn a Lambda proxy response dict into (status, headers, body bytes)."""
    if not isinstance(result, dict):
        raise ValueError(f"malformed Lambda proxy response: {type(result).__name__}")
    status = int(result.get("statusCode", 200))
    out: list[tuple[str, str]] = []
    multi = result.get("multiValueHeaders") or {}
    for name, values in multi.items():
        out.extend((name, str(v)) for v in values)
    seen = {name.lower() for name in multi}
    out.extend((n, str(v)) for n, v in (result.get("headers") or {}).items() if n.lower() not in seen)
    if not any(n.lower() == "content-type" for n, _ in out):
        out.append(("Content-Type", "application/json"))  # API Gateway's default
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    return status, out, raw


_DIGITS = re.compile(r"[0-9]+")
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class _BadFraming(Exception):
    """The request's body framing (Content-Length, chunk sizes) can't be read."""


class _TooLarge(Exception):
    """The request's body is over MAX_PAYLOAD_BYTES."""


class _RequestHandler(BaseHTTPRequestHandler):
    server: ApiGatewayServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without TCP_NODELAY a keep-alive client's delayed
    # ACK holds the second one back ~40 ms.
    disable_nagle_algorithm = True

    def _read_body(self) -> bytes:
        """The request body. Raises _BadFraming for a malformed Content-Length or chunk size (they
        used to raise in the request thread: a traceback and no answer) and _TooLarge past the API
        Gateway quota, as soon as a length says so (a chunked body is not buffered whole first)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size_field = self.rfile.readline(1024).split(b";")[0].strip() or b"0"
                if not _HEX.fullmatch(size_field):
                    raise _BadFraming("invalid chunk size")
                size = int(size_field, 16)
                if size == 0:
                    while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                total += size
                if total > MAX_PAYLOAD_BYTES:
                    raise _TooLarge
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
            return b"".join(chunks)
        lengths = {value.strip() for value in self.headers.get_all("Content-Length") or []}
        if len(lengths) > 1:  # RFC 9112 §6.3: conflicting lengths are unrecoverable
            raise _BadFraming("conflicting Content-Length headers")
        raw = lengths.pop() if lengths else "0"
        if not _DIGITS.fullmatch(raw):
            raise _BadFraming("Content-Length must be a non-negative integer")
        length = int(raw)
        if length > MAX_PAYLOAD_BYTES:
            raise _TooLarge
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        try:
            body = self._read_body()
        except _TooLarge:
            self.close_connection = True  # unread body left on the socket
            status, headers, payload = problem(
                413, "Payload Too Large", "request body exceeds 10 MB", request_id
            )
        except _BadFraming as exc:
            self.close_connection = True  # where the next request starts is unknown
            status, headers, payload = problem(
                400, "Bad Request", f"malformed request body: {exc}", request_id
            )
        else:
            status, headers, payload = self.server.dispatch(
                self.command, self.path, list(self.headers.items()), body, self.client_address[0], request_id
            )
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", request_id)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        log.debug(
            "%s %s -> %d in %.1f ms", self.command, self.path, status, (time.monotonic() - started) * 1000
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a method API Gateway does not route, a malformed request line,
        a URI too long) in the API's problem+json instead of its HTML page. Methods other than
        API Gateway's seven are a 405 with the ones it routes."""
        if code == 501:  # http.server's answer to a method without a do_<METHOD>
            code, message = 405, f"{self.command} is not allowed; use one of {', '.join(GATEWAY_METHODS)}"
        title = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
        status, headers, payload = problem(code, title, message or explain or title, str(uuid.uuid4()))
        self.close_connection = True
        self.send_response(status, message)
        for name, value in headers:
            self.send_header(name, value)
        if status == 405:
            self.send_header("Allow", ", ".join(GATEWAY_METHODS))
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)


class ApiGatewayServer(ThreadingHTTPServer):
    daemon_threads = True  # in-flight requests must not block shutdown
    allow_reuse_address = True

    def __init__(
        self,
        host: str,
        port: int,
        routes: Sequence[Route],
        context_factory: Callable[[str], Any] = new_context,
    ) -> None:
        super().__init__((host, port), _RequestHandler)
        self.routes = list(routes)
        self.context_factory = context_factory
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def dispatch(
        self,
        method: str,
        raw_path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        request_id: str,
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        path = urlsplit(raw_path).path
        found = resolve_route(self.routes, method, path)
        if found is None:
            return problem(404, "Not Found", f"No route for {method} {path}", request_id)
        route, params = found
        event = build_proxy_event(
            method=method,
            raw_path=raw_path,
            headers=headers,
            body=body,
            source_ip=source_ip,
            resource=route.resource,
            path_parameters=params,
            request_id=request_id,
        )
        try:
            return proxy_response(route.handler(event, self.context_factory(route.function_name)))
        except Exception:
            log.exception("%s failed on %s %s", route.function_name, method, path)
            return _gateway_error()

    def start(self) -> None:
        # short poll so stop() (and each test's teardown) does not wait the default 0.5 s
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="http-front", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.server_close()

"""The HTTP front must hand handlers exactly what API Gateway (REST, proxy) would, route like
the CDK stack, and write the proxy response back faithfully."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from local.http_front import ApiGatewayServer, build_proxy_event, default_routes

API = "/v3/openmeter"


class FakeFunction:
    def __init__(self, name: str, response: Any = None) -> None:
        self.name = name
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.response = response or {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"fn": name}),
        }

    def __call__(self, event: dict[str, Any], context: Any) -> Any:
        self.events.append(event)
        self.contexts.append(context)
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


@pytest.fixture
def front() -> Iterator[tuple[str, FakeFunction, FakeFunction]]:
    ingest, api = FakeFunction("ingest"), FakeFunction("api")
    server = ApiGatewayServer("127.0.0.1", 0, default_routes(ingest, api))
    server.start()
    try:
        yield server.url, ingest, api
    finally:
        server.stop()


def test_build_proxy_event_shape() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    event = build_proxy_event(
        method="GET",
        raw_path=f"{API}/meters/m%201?filter[key][eq]=a&filter%5Bkey%5D%5Beq%5D=b&page[size]=10&flag",
        headers=[("Host", "127.0.0.1:8787"), ("Accept", "a/b"), ("Accept", "c/d"), ("User-Agent", "ua")],
        body=b"",
        source_ip="127.0.0.1",
        resource=f"{API}/{{proxy+}}",
        path_parameters={"proxy": "meters/m 1"},
        request_id="req-1",
        now=now,
    )
    assert event == {
        "resource": f"{API}/{{proxy+}}",
        "path": f"{API}/meters/m%201",
        "httpMethod": "GET",
        "headers": {
            "Host": "127.0.0.1:8787",
            "Accept": "c/d",
            "User-Agent": "ua",
            "X-Forwarded-For": "127.0.0.1",
            "X-Forwarded-Proto": "http",
        },
        "multiValueHeaders": {
            "Host": ["127.0.0.1:8787"],
            "Accept": ["a/b", "c/d"],
            "User-Agent": ["ua"],
            "X-Forwarded-For": ["127.0.0.1"],
            "X-Forwarded-Proto": ["http"],
        },
        "queryStringParameters": {"filter[key][eq]": "b", "page[size]": "10", "flag": ""},
        "multiValueQueryStringParameters": {
            "filter[key][eq]": ["a", "b"],
            "page[size]": ["10"],
            "flag": [""],
        },
        "pathParameters": {"proxy": "meters/m 1"},
        "stageVariables": None,
        "requestContext": event["requestContext"],
        "body": None,
        "isBase64Encoded": False,
    }
    ctx = event["requestContext"]
    assert ctx["requestId"] == "req-1" and ctx["stage"] == "local" and ctx["httpMethod"] == "GET"
    assert ctx["path"] == f"{API}/meters/m%201" and ctx["resourcePath"] == f"{API}/{{proxy+}}"
    assert ctx["requestTimeEpoch"] == int(now.timestamp() * 1000)
    assert ctx["requestTime"] == "02/Jan/2026:03:04:05 +0000"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1" and ctx["identity"]["userAgent"] == "ua"


def test_no_query_string_gives_nulls() -> None:
    event = build_proxy_event(
        method="GET",
        raw_path=f"{API}/meters",
        headers=[],
        body=b"",
        source_ip="::1",
        resource=f"{API}/{{proxy+}}",
        path_parameters={"proxy": "meters"},
    )
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None


def test_non_utf8_body_is_base64() -> None:
    event = build_proxy_event(
        method="POST",
        raw_path=f"{API}/events",
        headers=[],
        body=b"\xff\x00",
        source_ip="127.0.0.1",
        resource=f"{API}/events",
        path_parameters={},
    )
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\x00"
    assert event["pathParameters"] is None


def test_post_events_goes_to_ingest_with_body_and_headers(
    front: tuple[str, FakeFunction, FakeFunction],
) -> None:
    url, ingest, api = front
    ingest.response = {
        "statusCode": 202,
        "headers": {"X-One": "1"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": "",
    }
    body = json.dumps({"specversion": "1.0", "id": "é"})
    resp = requests.post(
        f"{url}{API}/events",
        data=body.encode(),
        timeout=5,
        headers={"Content-Type": "application/cloudevents+json", "Authorization": "Bearer t"},
    )
    assert resp.status_code == 202
    assert resp.headers["X-One"] == "1"
    assert resp.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    assert resp.headers["x-amzn-RequestId"]
    assert api.events == []
    [event] = ingest.events
    assert event["httpMethod"] == "POST" and event["resource"] == f"{API}/events"
    assert event["body"] == body and event["isBase64Encoded"] is False
    assert event["headers"]["Content-Type"] == "application/cloudevents+json"
    assert event["headers"]["Authorization"] == "Bearer t"
    assert event["requestContext"]["requestId"] == resp.headers["x-amzn-RequestId"]
    ctx = ingest.contexts[0]
    assert ctx.function_name == "meterline-ingest" and ctx.get_remaining_time_in_millis() > 0
    assert ctx.invoked_function_arn.endswith(":function:meterline-ingest") and ctx.aws_request_id


def test_other_paths_go_to_api_with_raw_bracket_queries(
    front: tuple[str, FakeFunction, FakeFunction],
) -> None:
    url, ingest, api = front
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    conn.request("GET", f"{API}/events?filter[subject][eq]=cust-1&page[size]=2&page%5Bafter%5D=c%2Fd")
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read()) == {"fn": "api"}
    conn.close()
    requests.delete(f"{url}{API}/meters/m1", timeout=5)
    assert ingest.events == []
    listing, delete = api.events
    assert listing["resource"] == f"{API}/events" and listing["pathParameters"] is None
    assert listing["queryStringParameters"] == {
        "filter[subject][eq]": "cust-1",
        "page[size]": "2",
        "page[after]": "c/d",
    }
    assert delete["httpMethod"] == "DELETE" and delete["resource"] == f"{API}/{{proxy+}}"
    assert delete["pathParameters"] == {"proxy": "meters/m1"} and delete["path"] == f"{API}/meters/m1"


@pytest.mark.parametrize("path", ["/", "/v3/other", API, f"{API}/", "/v3/openmeterx/events"])
def test_outside_the_api_is_a_problem_404(front: tuple[str, FakeFunction, FakeFunction], path: str) -> None:
    url, ingest, api = front
    resp = requests.get(f"{url}{path}", timeout=5)
    assert resp.status_code == 404
    assert resp.headers["Content-Type"] == "application/problem+json"
    problem = resp.json()
    assert problem["status"] == 404 and problem["title"] == "Not Found" and problem["detail"]
    assert problem["type"] == "https://httpstatuses.com/404"
    assert problem["instance"] == f"kong:trace:{resp.headers['x-amzn-RequestId']}"
    assert ingest.events == api.events == []


def test_base64_response_is_decoded(front: tuple[str, FakeFunction, FakeFunction]) -> None:
    url, _, api = front
    api.response = {
        "statusCode": 200,
        "headers": {"Content-Type": "application/pdf"},
        "body": base64.b64encode(b"%PDF\xff").decode(),
        "isBase64Encoded": True,
    }
    resp = requests.get(f"{url}{API}/invoices/i1/pdf", timeout=5)
    assert resp.content == b"%PDF\xff" and resp.headers["Content-Type"] == "application/pdf"


def test_crashing_handler_is_a_502_like_api_gateway(front: tuple[str, FakeFunction, FakeFunction]) -> None:
    url, _, api = front
    api.response = RuntimeError("boom")
    resp = requests.get(f"{url}{API}/meters", timeout=5)
    assert resp.status_code == 502 and resp.json() == {"message": "Internal server error"}


def test_binary_request_body_reaches_handler_base64(front: tuple[str, FakeFunction, FakeFunction]) -> None:
    url, ingest, _ = front
    requests.post(f"{url}{API}/events", data=b"\x80\x81", timeout=5)
    assert ingest.events[0]["isBase64Encoded"] is True
    assert base64.b64decode(ingest.events[0]["body"]) == b"\x80\x81"


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "BREW"])
def test_methods_api_gateway_does_not_route_are_problem_json(
    front: tuple[str, FakeFunction, FakeFunction], method: str
) -> None:
    url, ingest, api = front
    resp = requests.request(method, url + "/v3/openmeter/meters", timeout=5)
    assert resp.status_code == 405
    assert resp.headers["Content-Type"] == "application/problem+json"
    body = resp.json()
    assert body["status"] == 405 and body["instance"].startswith("kong:trace:")
    assert "GET" in resp.headers["Allow"]
    assert api.events == [] and ingest.events == []


def _raw(url: str, head: str, body: bytes = b"") -> bytes:
    """Send a hand-written request (what requests/http.client refuse to) and read the answer."""
    import socket
    from urllib.parse import urlsplit

    split = urlsplit(url)
    with socket.create_connection((split.hostname, split.port), timeout=5) as sock:
        sock.sendall(f"POST {API}/meters HTTP/1.1\r\nHost: x\r\n{head}\r\n".encode() + body)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
    return out


@pytest.mark.parametrize(
    ("head", "body"),
    [
        ("Content-Length: abc\r\n", b"{}"),
        ("Content-Length: -5\r\n", b"{}"),
        ("Content-Length: 2\r\nContent-Length: 5\r\n", b"{}"),
        ("Transfer-Encoding: chunked\r\n", b"zz\r\n{}\r\n0\r\n\r\n"),
        ("Transfer-Encoding: chunked\r\n", b"-2\r\n{}\r\n0\r\n\r\n"),
    ],
)
def test_malformed_body_framing_is_a_problem_400(
    front: tuple[str, FakeFunction, FakeFunction], head: str, body: bytes
) -> None:
    # These raised in the request thread (a traceback, the connection closed without an answer).
    url, ingest, api = front
    answer = _raw(url, head, body)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 400"), answer
    assert b"application/problem+json" in rest and b'"status": 400' in rest
    assert api.events == [] and ingest.events == []


def test_a_chunked_body_over_the_limit_is_413_before_it_is_read(
    front: tuple[str, FakeFunction, FakeFunction],
) -> None:
    # Chunked bodies were read whole before the 10 MB check: a client announcing a 256 MB chunk had
    # the front wait for (and buffer) all of it. The announced size alone is enough to refuse it.
    import socket
    from urllib.parse import urlsplit

    url, _, api = front
    split = urlsplit(url)
    with socket.create_connection((split.hostname, split.port), timeout=5) as sock:
        head = f"POST {API}/meters HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        sock.sendall(head.encode() + b"10000000\r\n" + b"x" * 600)  # and nothing more
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert api.events == []

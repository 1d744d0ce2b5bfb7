"""One delivery attempt: a signed webhook POST (urllib3, no redirects, timeouts) or an SNS publish."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import urllib3

from shared.aws import clients
from shared.notifications.models import Channel, ChannelType
from shared.notifications.signing import signed_headers
from shared.notifications.urls import Resolver, UrlRejected, resolve_target, system_resolver

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 10.0
EXCERPT_BYTES = 1024
USER_AGENT = "Meterline-Webhooks/1.0"


@dataclass(frozen=True)
class SendResult:
    ok: bool
    status_code: int | None
    duration_ms: int
    body: str  # response excerpt or error text
    retryable: bool = True  # False: retrying cannot help (URL rejected by policy)


def _ca_certs() -> str | None:
    try:
        import certifi

        return str(certifi.where())
    except ImportError:  # pragma: no cover - the system store is used instead
        return None


class Sender:
    def __init__(
        self,
        allow_insecure_loopback: bool,
        resolver: Resolver = system_resolver,
        sns_client: Any | None = None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
    ) -> None:
        self.allow_insecure_loopback = allow_insecure_loopback
        self.resolver = resolver
        self._sns = sns_client
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)

    def send(self, channel: Channel, msg_id: str, body: bytes, timestamp: int, event_type: str) -> SendResult:
        if channel.type is ChannelType.SNS:
            return self._publish(channel, body, event_type)
        return self._post(channel, msg_id, body, timestamp)

    def _publish(self, channel: Channel, body: bytes, event_type: str) -> SendResult:
        start = time.monotonic()
        try:
            resp = (self._sns or clients.sns()).publish(
                TopicArn=channel.topic_arn,
                Message=body.decode(),
                MessageAttributes={"type": {"DataType": "String", "StringValue": event_type}},
            )
        except Exception as exc:  # any failure is an attempt to retry (throttling, access, missing topic)
            return SendResult(False, None, _ms(start), f"SNS publish failed: {exc}"[:EXCERPT_BYTES])
        return SendResult(True, 200, _ms(start), f"MessageId {resp.get('MessageId', '')}")

    def _post(self, channel: Channel, msg_id: str, body: bytes, timestamp: int) -> SendResult:
        start = time.monotonic()
        try:
            target = resolve_target(channel.url or "", self.allow_insecure_loopback, self.resolver)
        except UrlRejected as exc:
            return SendResult(False, None, _ms(start), f"URL rejected: {exc}", retryable=False)
        default_port = 443 if target.scheme == "https" else 80
        headers = {
            **channel.custom_headers,
            # Connect to the vetted address, but speak to the host the URL names.
            "Host": target.host if target.port == default_port else f"{target.host}:{target.port}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **signed_headers(channel.signing_secret or "", msg_id, timestamp, body),
        }
        kwargs: dict[str, Any] = {"timeout": self.timeout, "retries": False, "maxsize": 1}
        if target.scheme == "https":
            pool: urllib3.HTTPConnectionPool = urllib3.HTTPSConnectionPool(
                target.address,
                target.port,
                server_hostname=target.host,
                assert_hostname=target.host,
                cert_reqs="CERT_REQUIRED",
                ca_certs=_ca_certs(),
                **kwargs,
            )
        else:
            pool = urllib3.HTTPConnectionPool(target.address, target.port, **kwargs)
        try:
            resp = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=headers,
                redirect=False,  # a 3xx is a failed attempt: we never follow it (to another host or not)
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                excerpt = resp.read(EXCERPT_BYTES).decode("utf-8", "replace")
            finally:
                resp.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            return SendResult(
                False, None, _ms(start), f"request failed: {type(exc).__name__}: {exc}"[:EXCERPT_BYTES]
            )
        except ValueError as exc:  # UnicodeError included
            # http.client refuses the request before sending it (a header name or value with CR/LF or
            # outside Latin-1, stored before the API checked them): the same every time, so no retry.
            reason = f"request refused: invalid header or URL: {exc}"[:EXCERPT_BYTES]
            return SendResult(False, None, _ms(start), reason, retryable=False)
        finally:
            pool.close()
        status = int(resp.status)
        if 300 <= status < 400:
            excerpt = f"redirect to [{resp.headers.get('Location', '')}] not followed"
        return SendResult(200 <= status < 300, status, _ms(start), excerpt)


def _ms(start: float) -> int:
    return int((time.monotonic() - start) * 1000)

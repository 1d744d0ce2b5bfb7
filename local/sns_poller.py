"""SNS -> Lambda: the domain topic fans out to an SQS queue that this poller drains, handing each
message to the handler in the Lambda SNS event shape. Two run: the notify function (every domain
event) and the rate function (test clock advance requests only, by the same filter policy as the
stack's subscription).

A message is deleted only after the handler returned. Failures are retried (the message
reappears after `retry_delay`); after `max_attempts` (Lambda async invoke: 1 + 2 retries)
it is parked on a notify DLQ queue rather than dropped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from local.handlers import Handler
from local.lambda_context import new_context

log = logging.getLogger(__name__)

FUNCTION_NAME = "meterline-notify"


@dataclass(frozen=True)
class SnsConfig:
    queue_name: str = "meterline-notify-local"
    dlq_name: str = "meterline-notify-local-dlq"
    poll_interval: float = 0.2
    retry_delay: int = 1  # seconds a failed message stays invisible (SQS visibility timeout)
    max_attempts: int = 3
    function_name: str = FUNCTION_NAME
    # SNS subscription filter policy (on message attributes), as the stack's subscription has it.
    filter_policy: dict[str, list[str]] | None = None


def to_sns_event(envelope: dict[str, Any], subscription_arn: str) -> dict[str, Any]:
    """The SNS notification JSON (as SNS puts it on a non-raw SQS subscription) -> Lambda SNS event."""
    return {
        "Records": [
            {
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "Sns": {
                    "Type": envelope.get("Type", "Notification"),
                    "MessageId": envelope.get("MessageId"),
                    "TopicArn": envelope.get("TopicArn"),
                    "Subject": envelope.get("Subject"),  # null when published without one, as in Lambda
                    "Message": envelope.get("Message"),
                    "Timestamp": envelope.get("Timestamp"),
                    "SignatureVersion": envelope.get("SignatureVersion", "1"),
                    "Signature": envelope.get("Signature", "local"),
                    # Lambda spells these ...Url, the SQS envelope ...URL
                    "SigningCertUrl": envelope.get("SigningCertURL", envelope.get("SigningCertUrl", "")),
                    "UnsubscribeUrl": envelope.get("UnsubscribeURL", envelope.get("UnsubscribeUrl", "")),
                    "MessageAttributes": envelope.get("MessageAttributes") or {},
                },
            }
        ]
    }


@dataclass
class SnsPoller:
    sns: Any
    sqs: Any
    topic_arn: str
    handler: Handler
    config: SnsConfig = field(default_factory=SnsConfig)
    context_factory: Callable[[str], Any] = new_context
    stop_event: threading.Event = field(default_factory=threading.Event)
    queue_url: str = ""
    dlq_url: str = ""
    subscription_arn: str = ""
    delivered: int = 0
    failed: int = 0
    _thread: threading.Thread | None = None

    def setup(self) -> None:
        """Queue + subscription (raw delivery off, so the queue holds the SNS envelope). Idempotent."""
        self.dlq_url = self.sqs.create_queue(QueueName=self.config.dlq_name)["QueueUrl"]
        self.queue_url = self.sqs.create_queue(QueueName=self.config.queue_name)["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        attributes = {"RawMessageDelivery": "false"}
        if self.config.filter_policy is not None:
            attributes["FilterPolicy"] = json.dumps(self.config.filter_policy)
        self.subscription_arn = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn["Attributes"]["QueueArn"],
            Attributes=attributes,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]

    def poll_once(self) -> int:
        """Receive up to 10 messages and invoke the handler once per message (SNS never batches)."""
        resp = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=0,
            VisibilityTimeout=self.config.retry_delay,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        )
        messages = resp.get("Messages", [])
        for msg in messages:
            self._handle(msg)
        return len(messages)

    def _handle(self, msg: dict[str, Any]) -> None:
        try:
            event = to_sns_event(json.loads(msg["Body"]), self.subscription_arn)
            self.handler(event, self.context_factory(self.config.function_name))
        except Exception:
            self.failed += 1
            attempts = int(msg.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
            log.exception(
                "%s failed (attempt %d/%d)", self.config.function_name, attempts, self.config.max_attempts
            )
            if attempts < self.config.max_attempts:
                return  # reappears after the visibility timeout
            self.sqs.send_message(QueueUrl=self.dlq_url, MessageBody=msg["Body"])
            log.error("%s: giving up on message, parked on %s", self.config.function_name, self.dlq_url)
        else:
            self.delivered += 1
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"])

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                received = self.poll_once()
            except Exception:
                log.exception("sns poller failed; retrying")
                received = 0
            if received == 0:
                self.stop_event.wait(self.config.poll_interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"sns-{self.config.function_name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

"""A stand-in for the LambdaContext object the Lambda runtime passes to handlers."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs line up with the ones moto returns


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@dataclass
class LambdaContext:
    """Carries the attributes Powertools' Logger/idempotency read (name, ARN, memory, request id)."""

    function_name: str
    timeout_s: float = 30.0
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{region()}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/[{self.function_version}]{self.aws_request_id[:8]}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def new_context(function_name: str, timeout_s: float = 30.0) -> LambdaContext:
    """One fresh context per invocation, as Lambda does."""
    return LambdaContext(function_name=function_name, timeout_s=timeout_s)

"""One factory for every Meterline Lambda, so runtime, logging and tracing defaults never drift."""

from __future__ import annotations

from dataclasses import dataclass, field

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import settings

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64
DEFAULT_MEMORY_MB = 1024
DEFAULT_TIMEOUT_S = 60


@dataclass(frozen=True)
class FunctionSpec:
    """What differs between the functions; everything else is a factory default."""

    id: str
    handler: str
    description: str
    memory_mb: int = DEFAULT_MEMORY_MB
    timeout_s: int = DEFAULT_TIMEOUT_S
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def package(self) -> str:
        """The function's package under `functions/` (its asset directory's name too)."""
        return self.handler.split(".")[1]


def lambda_code(asset_dir: str) -> lambda_.Code:
    """A function's code asset: its dependencies, shared/ and its functions/<name>/ package."""
    return lambda_.Code.from_asset(asset_dir, exclude=["**/__pycache__", "**/*.pyc"])


class MeterlineFunction(Construct):
    """A Lambda function with its own role and log group.

    The role starts empty (no AWS managed policy): the function may write to its own log group
    only; every data-plane permission is granted explicitly by the stack.
    """

    def __init__(self, scope: Construct, spec: FunctionSpec, *, code: lambda_.Code) -> None:
        super().__init__(scope, spec.id)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays[settings.LOG_RETENTION],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Meterline {spec.id} function",
        )
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            description=spec.description,
            code=code,
            handler=spec.handler,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            memory_size=spec.memory_mb,
            timeout=cdk.Duration.seconds(spec.timeout_s),
            role=self.role,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            tracing=lambda_.Tracing.ACTIVE,
            environment={
                "POWERTOOLS_SERVICE_NAME": settings.SERVICE_NAME,
                "POWERTOOLS_METRICS_NAMESPACE": settings.METRICS_NAMESPACE,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                "POWERTOOLS_LOGGER_LOG_EVENT": "false",
                **spec.environment,
            },
        )

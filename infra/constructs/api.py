"""The public REST API: POST /v3/openmeter/events -> ingest, everything else -> api.

Authentication happens inside the functions (Bearer tokens, hashed, looked up in DynamoDB), so
methods use no API Gateway authorizer.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra import settings

API_PREFIX = ("v3", "openmeter")
STAGE_NAME = "prod"


def _access_log_format() -> apigw.AccessLogFormat:
    """One JSON line per request; no caller identity or headers (they carry API tokens)."""
    f = apigw.AccessLogField
    fields = {
        "requestId": f.context_request_id(),
        "ip": f.context_identity_source_ip(),
        "requestTime": f.context_request_time(),
        "httpMethod": f.context_http_method(),
        "resourcePath": f.context_resource_path(),
        "path": f.context_path(),
        "status": f.context_status(),
        "protocol": f.context_protocol(),
        "responseLength": f.context_response_length(),
        "responseLatency": f.context_response_latency(),
        "integrationLatency": f.context_integration_latency(),
        "integrationStatus": f.context_integration_status(),
        "errorMessage": f.context_error_message(),
    }
    return apigw.AccessLogFormat.custom(json.dumps(fields))


class MeterlineApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        ingest_function: lambda_.IFunction,
        api_function: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays[settings.LOG_RETENTION],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            description="Meterline usage metering API (OpenMeter v3 compatible paths)",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # Access and execution logs need the account-level API Gateway CloudWatch role.
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=cdk.RemovalPolicy.RETAIN,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=_access_log_format(),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # request bodies and headers carry API tokens
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=settings.API_THROTTLE_RATE,
                throttling_burst_limit=settings.API_THROTTLE_BURST,
            ),
        )
        self.request_validator = self.rest_api.add_request_validator(
            "RequestValidator",
            validate_request_body=True,  # applies where a method declares a model
            validate_request_parameters=True,
        )

        base = self.rest_api.root
        for part in API_PREFIX:
            base = base.add_resource(part)

        ingest = apigw.LambdaIntegration(ingest_function, allow_test_invoke=False)
        api = apigw.LambdaIntegration(api_function, allow_test_invoke=False)

        self.events_resource = base.add_resource("events")
        self.events_resource.add_method("POST", ingest, request_validator=self.request_validator)
        # GET /events (listing) and any other verb on /events belong to the api function.
        self.events_resource.add_method("ANY", api, request_validator=self.request_validator)

        self.proxy_resource = base.add_resource("{proxy+}")
        self.proxy_resource.add_method(
            "ANY",
            api,
            request_validator=self.request_validator,
            request_parameters={"method.request.path.proxy": True},
        )

    @property
    def url(self) -> str:
        return self.rest_api.url_for_path("/" + "/".join(API_PREFIX))

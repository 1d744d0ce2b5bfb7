"""CDK app entry point: `cdk synth` (see cdk.json) or `python -m infra.app`.

Fully offline: no lookups, no AWS calls, environment-agnostic stack. cdk-nag's AWS Solutions
checks run as a validation plugin; any unacknowledged finding fails the synth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra import settings
from infra.stack import MeterlineStack


def build_app(
    context: Mapping[str, Any] | None = None,
    *,
    lambda_asset: str | None = None,
    outdir: str | None = None,
) -> cdk.App:
    """The app with cdk-nag attached; `context`/`outdir` are for tests (the CLI passes both via env)."""
    app = cdk.App(context=dict(context) if context else None, outdir=outdir)
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    stack = MeterlineStack(
        app,
        settings.STACK_ID,
        lambda_asset=lambda_asset,
        description="Meterline serverless usage metering",
    )
    cdk.Tags.of(stack).add("service", settings.SERVICE_NAME)
    return app


def main() -> None:
    build_app().synth()


if __name__ == "__main__":
    main()

"""CloudWatch alarms: DLQ not empty, aggregate falling behind, function errors."""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct

ITERATOR_AGE_THRESHOLD_MS = 60_000
PERIOD = cdk.Duration.minutes(1)


class Alarms(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        dead_letter_queue: sqs.IQueue,
        aggregate_function: lambda_.IFunction,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)

        self.dlq_not_empty = cw.Alarm(
            self,
            "AggregateDlqNotEmpty",
            alarm_description="Kinesis batches the aggregate function gave up on are waiting in the DLQ.",
            metric=dead_letter_queue.metric_approximate_number_of_messages_visible(
                statistic=cw.Stats.MAXIMUM, period=PERIOD
            ),
            threshold=0,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

        self.iterator_age = cw.Alarm(
            self,
            "AggregateIteratorAge",
            alarm_description="The aggregate function is more than 60 s behind the events stream.",
            metric=aggregate_function.metric(
                "IteratorAge", statistic=cw.Stats.MAXIMUM, period=PERIOD, unit=cw.Unit.MILLISECONDS
            ),
            threshold=ITERATOR_AGE_THRESHOLD_MS,
            comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
        )

        self.errors: dict[str, cw.Alarm] = {
            name: cw.Alarm(
                self,
                f"{name}Errors",
                alarm_description=f"The {name} function reported errors.",
                metric=fn.metric_errors(statistic=cw.Stats.SUM, period=cdk.Duration.minutes(5)),
                threshold=0,
                comparison_operator=cw.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            )
            for name, fn in functions.items()
        }

    @property
    def all(self) -> list[cw.Alarm]:
        return [self.dlq_not_empty, self.iterator_age, *self.errors.values()]

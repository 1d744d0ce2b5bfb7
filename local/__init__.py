"""Local runtime: the whole Meterline pipeline on one machine, no AWS account.

moto's server stands in for AWS; the same Lambda handlers that run on AWS are driven by the
small event-source emulators in this package (API Gateway front, Kinesis and SNS pollers,
EventBridge-style scheduler). Business code never asks "am I local?": only this wiring differs.
Start it with `python -m local`.
"""

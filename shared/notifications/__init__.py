"""Notifications: channels and rules (config table), evaluation of domain events, signed delivery.

Flow: domain event (SNS) -> `engine` (rules, thresholds, dedupe) -> `store` (event + deliveries,
one transaction) -> `dispatcher` (one worker per channel) -> `sender` (webhook / SNS) -> `retry`.
"""

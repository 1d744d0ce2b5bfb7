"""Entitlements and grants: boolean, static and metered access per customer, with the balance engine."""

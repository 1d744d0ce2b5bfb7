"""Prepaid customer credits: grants, a burn-down ledger, adjustments and exactly-once consumption."""

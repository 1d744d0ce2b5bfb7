"""`meterline`: the operator's command line (API tokens, first admin token, DLQ replay)."""

"""The product catalog: plans (versioned, with phases and rate cards), add-ons and tax codes."""

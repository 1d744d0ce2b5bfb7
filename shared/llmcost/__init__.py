"""LLM cost: the effective-dated price database (system prices from genai-prices, per-namespace
overrides) and feature cost queries (usage x the per-unit price effective at the time of the usage)."""

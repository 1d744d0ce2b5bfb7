"""Invoices: gathering lines from subscriptions and charges, collecting them into standard invoices,
and driving those through their lifecycle (engine-rules §2.8-§2.9, product.md §16)."""

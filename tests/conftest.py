"""Suite-wide defaults: usage is flushed after every batch (USAGE_FLUSH_SECONDS=0) so a test reads
what it just aggregated; the write-behind tail itself is tested in tests/integration/test_usage_journal.py."""

import os

os.environ.setdefault("USAGE_FLUSH_SECONDS", "0")

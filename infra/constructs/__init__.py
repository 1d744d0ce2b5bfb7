"""Building blocks of MeterlineStack."""

"""AWS CDK (Python) infrastructure for Meterline."""

"""`python -m meterline_cli` = the `meterline` command."""

from meterline_cli.main import main

main()

"""`python -m local`: run the whole Meterline pipeline locally (see local/__init__.py)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from local.kinesis_poller import EsmConfig
from local.persistence import StateInUse, wipe
from local.runtime import LocalRuntime, RuntimeConfig


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m local", description="Run Meterline locally on moto (no AWS).")
    p.add_argument("--host", default="127.0.0.1", help="bind address of the API (default 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("METERLINE_PORT", "8787")),
        help="API port; 0 picks a free one (default 8787, env METERLINE_PORT)",
    )
    p.add_argument(
        "--env-file",
        type=Path,
        default=Path(".local/meterline.env"),
        help="where URL and token are written once the stack is up (default .local/meterline.env)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where the stack's data is kept across restarts (default: state/ beside the env file)",
    )
    p.add_argument(
        "--in-memory",
        action="store_true",
        help="keep nothing: start empty and forget everything on exit",
    )
    p.add_argument(
        "--wipe",
        action="store_true",
        help="delete the saved state (meters, customers, events, usage...) and exit",
    )
    p.add_argument(
        "--rate-interval",
        type=float,
        default=_env_float("METERLINE_RATE_INTERVAL", 300.0),
        help="seconds between reset sweeps and rating runs; 0 disables (default 300)",
    )
    p.add_argument(
        "--invoice-interval",
        type=float,
        default=_env_float("METERLINE_INVOICE_INTERVAL", 900.0),
        help="seconds between invoice runs; 0 disables (default 900, env METERLINE_INVOICE_INTERVAL)",
    )
    p.add_argument(
        "--notify-retry-interval",
        type=float,
        default=_env_float("METERLINE_NOTIFY_RETRY_INTERVAL", 5.0),
        help="seconds between notification retry sweeps; 0 disables (default 5; AWS: every minute)",
    )
    p.add_argument("--max-retries", type=int, default=10, help="Kinesis MaximumRetryAttempts (default 10)")
    p.add_argument(
        "--log-level",
        default=os.environ.get("LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
    )
    return p.parse_args(argv)


def banner(rt: LocalRuntime, env_file: Path) -> str:
    url = rt.api_url
    state_dir = rt.config.state_dir
    state = f"{state_dir}   (kept across restarts; `make wipe` deletes it)" if state_dir else "in memory only"
    return "\n".join(
        [
            "",
            "Meterline is running locally (AWS = moto, no account needed)",
            f"  API      {url}",
            f"  Token    {rt.token}",
            f"  moto     {rt.moto.url}",
            f"  Env file {env_file}   (set -a; . {env_file}; set +a)",
            f"  State    {state}",
            "  Try:",
            f"    curl -sS -X POST {url}/events \\",
            f"      -H 'Authorization: Bearer {rt.token}' \\",
            "      -H 'Content-Type: application/cloudevents+json' \\",
            '      -d \'{"specversion":"1.0","id":"evt-1","source":"cli","type":"request",'
            '"subject":"customer-1","data":{"tokens":1}}\'',
            f"    curl -sS -g '{url}/events?page[size]=10' -H 'Authorization: Bearer {rt.token}'",
            "      (-g keeps [ ] literal in query keys like filter[subject][eq])",
            "  Ctrl-C to stop.",
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    if args.log_level != "DEBUG":  # botocore logs every client creation at INFO
        for noisy in ("botocore", "boto3", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    # The handler only flips a flag: taking a lock (e.g. Event.set) inside a signal handler can
    # deadlock against the main thread that holds it.
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    state_dir = args.state_dir or args.env_file.parent / "state"
    if args.wipe:
        try:
            had = wipe(state_dir)
        except StateInUse as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"wiped {state_dir}" if had else f"nothing to wipe at {state_dir}")
        return 0

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    config = RuntimeConfig(
        host=args.host,
        port=args.port,
        env_file=args.env_file,
        rate_interval=args.rate_interval,
        invoice_interval=args.invoice_interval,
        notify_retry_interval=args.notify_retry_interval,
        esm=EsmConfig(max_retries=args.max_retries),
        state_dir=None if args.in_memory else state_dir,
    )
    runtime = LocalRuntime(config)
    try:
        runtime.start()
    except StateInUse as exc:
        print(f"{exc} (or run with --state-dir DIR / --in-memory)", file=sys.stderr)
        return 1
    except Exception:
        logging.getLogger("local").exception("local runtime failed to start")
        return 1
    print(banner(runtime, args.env_file), flush=True)
    try:
        while not stopping:
            time.sleep(0.2)  # interrupted by signals; the handler runs between sleeps
    finally:
        logging.getLogger("local").info("stopping")
        runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

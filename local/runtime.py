"""Wires the pieces together: moto -> env -> resources -> token -> pollers -> HTTP -> env file."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from local import envfile
from local.auth import TOKEN_KEY, EnsureToken, NewToken, bootstrap_admin_token
from local.handlers import Handlers
from local.http_front import API_PREFIX, ApiGatewayServer, default_routes
from local.kinesis_poller import Checkpoints, EsmConfig, KinesisPoller
from local.moto_server import MotoServer, point_aws_env_at
from local.provision import Provisioned, provision
from local.scheduler import ScheduledJob, Scheduler
from local.sns_poller import SnsConfig, SnsPoller
from shared.testclocks.trigger import ADVANCE_REQUESTED

log = logging.getLogger(__name__)

HOUR = 3600.0

# Local-only defaults for settings the handlers read; an explicit environment value wins.
_LOCAL_DEFAULTS = {
    "ALLOW_INSECURE_LOOPBACK_WEBHOOKS": "true",
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines would flood the console
    "POWERTOOLS_METRICS_NAMESPACE": "Meterline",
}


@dataclass
class RuntimeConfig:
    host: str = "127.0.0.1"
    port: int = 8787  # 0 = any free port
    env_file: Path = Path(".local/meterline.env")
    rate_interval: float = 300.0  # as the stack's rate schedule: reset sweep every 5 minutes
    invoice_interval: float = 900.0  # as the stack's invoice schedule: every 15 minutes
    notify_retry_interval: float = 5.0  # the stack's notify retry sweep runs every minute
    usage_flush_interval: float = 5.0  # on AWS a sweep every 5 s within each minute's invocation
    esm: EsmConfig = field(default_factory=EsmConfig)
    sns: SnsConfig = field(default_factory=SnsConfig)
    # The rate function's SNS trigger: test clock advances run within moments, not at the schedule.
    clock_trigger: SnsConfig = field(
        default_factory=lambda: SnsConfig(
            queue_name="meterline-rate-local",
            dlq_name="meterline-rate-local-dlq",
            function_name="meterline-rate",
            filter_policy={"type": [ADVANCE_REQUESTED]},
        )
    )
    moto_port: int = 0
    # Where moto's state and the poller checkpoints are kept across restarts; None = memory only.
    state_dir: Path | None = None


def _reset_shared_caches() -> None:
    """Clients, settings and services built against another endpoint must not survive: a service
    keeps the client it was built with (tests restart a runtime in one process)."""
    from shared import bootstrap

    bootstrap.reset()


class LocalRuntime:
    def __init__(
        self,
        config: RuntimeConfig | None = None,
        handlers: Handlers | None = None,
        ensure_token: EnsureToken | None = None,
        new_token: NewToken | None = None,
    ) -> None:
        self.config = config or RuntimeConfig()
        self.handlers = handlers or Handlers()
        self._ensure_token, self._new_token = ensure_token, new_token
        self.moto = MotoServer(self.config.host, self.config.moto_port, self.config.state_dir)
        self.clients: dict[str, Any] = {}
        self.resources: Provisioned | None = None
        self.token = ""
        self.kinesis: KinesisPoller | None = None
        self.sns: SnsPoller | None = None
        self.clock_trigger: SnsPoller | None = None
        self.http: ApiGatewayServer | None = None
        self.scheduler: Scheduler | None = None
        self._saved_env: dict[str, str] = {}
        self._lock = threading.Lock()
        self.running = False

    @property
    def base_url(self) -> str:
        return self.http.url if self.http else ""

    @property
    def api_url(self) -> str:
        return f"{self.base_url}{API_PREFIX}"

    def start(self) -> None:
        """Bring everything up; the env file is written last, so its appearance means ready."""
        with self._lock:
            try:
                self._start()
            except BaseException:
                self._stop()
                raise

    def _start(self) -> None:
        cfg = self.config
        self._saved_env = dict(os.environ)
        envfile.forget_urls(cfg.env_file)  # a stale URL from a crashed run must not look "ready"
        point_aws_env_at(self.moto.start())
        for key, value in _LOCAL_DEFAULTS.items():
            os.environ.setdefault(key, value)
        _reset_shared_caches()
        session = boto3.session.Session()
        conf = Config(retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=16)
        self.clients = {
            s: session.client(s, config=conf) for s in ("dynamodb", "kinesis", "s3", "sns", "sqs")
        }
        self.resources = res = provision(self.clients)
        os.environ.update(res.env)
        _reset_shared_caches()

        self.token = bootstrap_admin_token(cfg.env_file, self._ensure_token, self._new_token)

        self.kinesis = KinesisPoller(
            kinesis=self.clients["kinesis"],
            sqs=self.clients["sqs"],
            handler=self.handlers.aggregate,
            stream_name=res.stream_name,
            stream_arn=res.stream_arn,
            dlq_url=res.dlq_url,
            config=cfg.esm,
            checkpoints=Checkpoints(cfg.state_dir / "kinesis-checkpoints.json" if cfg.state_dir else None),
        )
        self.kinesis.start()
        self.sns = SnsPoller(
            sns=self.clients["sns"],
            sqs=self.clients["sqs"],
            topic_arn=res.topic_arn,
            handler=self.handlers.notify,
            config=cfg.sns,
        )
        self.sns.setup()
        self.sns.start()
        self.clock_trigger = SnsPoller(
            sns=self.clients["sns"],
            sqs=self.clients["sqs"],
            topic_arn=res.topic_arn,
            handler=self.handlers.rate,
            config=cfg.clock_trigger,
        )
        self.clock_trigger.setup()
        self.clock_trigger.start()
        self.http = ApiGatewayServer(
            cfg.host, cfg.port, default_routes(self.handlers.ingest, self.handlers.api)
        )
        self.http.start()
        self.scheduler = Scheduler(
            [
                ScheduledJob("meterline-rate", self.handlers.rate, cfg.rate_interval),
                ScheduledJob("meterline-invoice", self.handlers.invoice, cfg.invoice_interval),
                ScheduledJob("meterline-notify-retry", self.handlers.notify_retry, cfg.notify_retry_interval),
                # As the stack's UsageFlushSchedule (every minute there): the idle-shard sweep.
                ScheduledJob("meterline-aggregate", self.handlers.aggregate, cfg.usage_flush_interval),
            ]
        )
        self.scheduler.start()

        envfile.update_env_file(
            cfg.env_file,
            {
                "METERLINE_URL": self.base_url,
                TOKEN_KEY: self.token,
                "METERLINE_MOTO_URL": self.moto.url,
            },
        )
        self.running = True
        log.info("meterline local runtime up at %s", self.api_url)

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def drain(self, timeout: float = 10.0) -> None:
        """Block until every record already on the stream went through the aggregate function."""
        if self.kinesis is None:
            raise RuntimeError("runtime not started")
        self.kinesis.drain(timeout)

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stop(self) -> None:
        # Reverse order: stop taking requests, then the pollers/scheduler, then AWS.
        if self.http:
            self.http.stop()
        for part in (self.scheduler, self.sns, self.clock_trigger):
            if part is not None:
                part.stop()
        if self.kinesis is not None:
            # Let an in-flight batch finish: the aggregate relies on one processor per shard, and a
            # runtime restarted in this process must not race a poller thread of the old one.
            self.kinesis.stop(timeout=60.0)
        self.moto.stop()
        try:
            envfile.forget_urls(self.config.env_file)
        except OSError:
            log.exception("could not update %s", self.config.env_file)
        if self._saved_env:  # leave the process environment as we found it (tests run in-process)
            for key in set(os.environ) - set(self._saved_env):
                del os.environ[key]
            os.environ.update(self._saved_env)
            self._saved_env = {}
            _reset_shared_caches()
        self.http = self.scheduler = self.sns = self.clock_trigger = self.kinesis = None
        self.running = False

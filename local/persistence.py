"""Durable local state: moto's backends survive Ctrl-C, restarts and `kill -9`.

moto keeps every AWS resource in this process's memory. To keep it:

- A write-ahead journal at the moto server: every mutating AWS request (PutItem, PutRecords,
  SendMessage, PutObject, ...) is applied and appended to `journal-<gen>.log` under one lock, and its
  response leaves only after the journal is fdatasync'd (group commit: one sync covers every request
  waiting). Applying and appending under one lock makes the journal order the order moto applied
  them, so a replay hands out the same Kinesis sequence numbers and ends in the same state.
- Snapshots: `snapshot.pickle` holds moto's backends (and moto's seeded random state, so replayed
  ids and SQS receipt handles come out the same) as of the start of journal <gen>. One is written on
  every start (after replay), on a clean stop and whenever the journal grows past `snapshot_every`
  entries; the old journal is deleted only after the new snapshot is renamed into place.

Start-up = load the snapshot, replay its journal, compact. A `kill -9` loses nothing a client was
answered for: the request was journaled before its response. Reads (Get*, List*, Describe*, Query,
Scan, S3 GET) and ReceiveMessage calls that returned nothing are not journaled.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pickle
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import get_input_stream

log = logging.getLogger(__name__)

SERVICES = ("dynamodb", "kinesis", "s3", "sns", "sqs")
READ_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "TransactGet", "Head")
_FRAME = struct.Struct(">II")  # payload length, crc32
_LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))
_sync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync
_BACKEND_DICT_FIXED = {"backend", "service_name", "_use_boto3_regions", "_additional_regions", "_id"}

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class StateInUse(RuntimeError):
    """Another `python -m local` holds this state directory."""


# -- snapshots ------------------------------------------------------------------------------------


class _Pickler(pickle.Pickler):
    """moto's SQS queues hold a Condition (and so a lock): pickle a fresh one in its place."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()
        if isinstance(obj, _LOCK_TYPES):
            return (threading.RLock if "RLock" in type(obj).__name__ else threading.Lock), ()
        return NotImplemented


def dump_backends() -> bytes:
    from moto.backends import get_backend
    from moto.moto_api._internal import mock_random

    state = {
        service: {account: dict(regions) for account, regions in get_backend(service).items()}  # type: ignore[arg-type]
        for service in SERVICES
    }
    # Service-wide indexes live on the BackendDict itself (S3: bucket name -> account).
    extras = {
        service: {k: v for k, v in vars(get_backend(service)).items() if k not in _BACKEND_DICT_FIXED}
        for service in SERVICES
    }
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(
        {"backends": state, "extras": extras, "random": mock_random.getstate()}
    )
    return buf.getvalue()


def reset_backends() -> None:
    from moto.backends import get_backend

    for service in SERVICES:
        backend = get_backend(service)
        for regions in backend.values():
            regions.reset()
        dict.clear(backend)


def load_backends(blob: bytes) -> None:
    """Put pickled backends in place of the live ones (the module-level BackendDicts stay)."""
    from moto.backends import get_backend
    from moto.moto_api._internal import mock_random

    data = pickle.loads(blob)
    reset_backends()
    for service, accounts in data["backends"].items():
        live = get_backend(service)
        for account, regions in accounts.items():
            account_backends = live[account]  # creates the per-account dict moto expects
            for region, backend in regions.items():
                dict.__setitem__(account_backends, region, backend)
    for service, attributes in data["extras"].items():
        for name, value in attributes.items():
            setattr(get_backend(service), name, value)
    mock_random.setstate(data["random"])


# -- the journal ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes


def _frame(request: Request) -> bytes:
    payload = pickle.dumps(
        (request.method, request.path, request.query, request.headers, request.body), protocol=5
    )
    return _FRAME.pack(len(payload), zlib.crc32(payload)) + payload


def read_journal(path: Path) -> Iterator[Request]:
    """Every whole entry; a torn tail (power loss mid-write) ends the journal."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    pos = 0
    while pos + _FRAME.size <= len(data):
        size, crc = _FRAME.unpack_from(data, pos)
        payload = data[pos + _FRAME.size : pos + _FRAME.size + size]
        if len(payload) < size or zlib.crc32(payload) != crc:
            log.warning("journal %s ends in a torn entry at byte %d; ignoring it", path, pos)
            return
        yield Request(*pickle.loads(payload))
        pos += _FRAME.size + size


class Journal:
    """Append-only file; `append` returns a position, `sync(position)` makes it durable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.entries = 0
        self._written = 0
        self._synced = 0
        self._sync_lock = threading.Lock()

    def append(self, request: Request) -> int:
        """Caller holds the apply lock. After os.write the entry survives a kill of this process."""
        os.write(self._fd, _frame(request))
        self.entries += 1
        self._written += 1
        return self._written

    def sync(self, upto: int) -> None:
        """Group commit: whoever syncs covers every entry written before it started."""
        if self._synced >= upto:
            return
        with self._sync_lock:
            if self._synced >= upto or self._fd < 0:  # closed = synced (see close)
                return
            target = self._written
            _sync(self._fd)
            self._synced = target

    def close(self) -> None:
        with self._sync_lock:
            if self._fd >= 0:
                _sync(self._fd)
                os.close(self._fd)
                self._fd = -1
                self._synced = self._written


def _action(environ: dict[str, Any], body: bytes) -> str | None:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).rsplit(".", 1)[-1]
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        values = parse_qs(body.decode("utf-8", "replace")).get("Action")
        return values[0] if values else None
    return None


def is_mutating(environ: dict[str, Any], body: bytes) -> bool:
    method = environ.get("REQUEST_METHOD", "GET")
    if method in ("GET", "HEAD", "OPTIONS") or environ.get("PATH_INFO", "").startswith("/moto-api"):
        return False
    action = _action(environ, body)
    return action is None or not action.startswith(READ_PREFIXES)  # S3 PUT/POST/DELETE have none


def _changed_nothing(environ: dict[str, Any], body: bytes, response: bytes) -> bool:
    """An empty ReceiveMessage (the notify poller's idle loop) leaves the queue as it was."""
    if _action(environ, body) != "ReceiveMessage":
        return False
    return b'"Messages"' not in response and b"<Message>" not in response


# -- the state directory --------------------------------------------------------------------------


class DurableState:
    """One state directory: lock, snapshot + journals, the WSGI middleware and replay."""

    def __init__(self, directory: Path, snapshot_every: int = 20_000) -> None:
        self.dir = directory
        self.snapshot_every = snapshot_every
        self.apply_lock = threading.Lock()  # one mutating request at a time, in journal order
        self.journal: Journal | None = None
        self.generation = 0
        self._lock_fd = -1
        self.replayed = 0
        self.closed = False  # after close: mutating requests are refused, never applied unjournaled

    @property
    def snapshot_path(self) -> Path:
        return self.dir / "snapshot.pickle"

    def journal_path(self, generation: int) -> Path:
        return self.dir / f"journal-{generation}.log"

    def open(self, app: WsgiApp) -> None:
        """Lock the directory, restore moto's state from it and start a new journal."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise StateInUse(f"{self.dir} is in use by another local stack") from None
        started = time.monotonic()
        self.closed = False
        self.generation = 0
        if self.snapshot_path.exists():
            blob = self.snapshot_path.read_bytes()
            (self.generation,) = struct.unpack_from(">Q", blob)
            load_backends(blob[8:])
        else:
            reset_backends()
        self.replayed = self._replay(app, self.journal_path(self.generation))
        self.snapshot()  # compact now, so the next start replays only what this run journals
        log.info(
            "local state restored from %s (%d journaled requests replayed) in %.2fs",
            self.dir,
            self.replayed,
            time.monotonic() - started,
        )

    def _replay(self, app: WsgiApp, path: Path) -> int:
        count = 0
        for request in read_journal(path):
            environ = EnvironBuilder(
                method=request.method,
                path=request.path,
                query_string=request.query,
                headers=request.headers,
                data=request.body,
            ).get_environ()
            for _ in app(environ, lambda *a, **k: None):
                pass
            count += 1
        return count

    def snapshot(self, only_if: Journal | None = None) -> None:
        """Write snapshot <gen+1> (atomically), start journal <gen+1>, drop the older journals.

        `only_if`: skip unless that journal is still the current one (a background compaction that
        another one beat to it)."""
        with self.apply_lock:
            if only_if is not None and self.journal is not only_if:
                return
            blob = struct.pack(">Q", self.generation + 1) + dump_backends()
            tmp = self.dir / "snapshot.pickle.tmp"
            with open(tmp, "wb") as fh:
                fh.write(blob)
                fh.flush()
                _sync(fh.fileno())
            os.replace(tmp, self.snapshot_path)
            if self.journal is not None:
                self.journal.close()
            self.generation += 1
            self.journal = Journal(self.journal_path(self.generation))
            dir_fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename and the new journal's name are durable before...
            finally:
                os.close(dir_fd)
            for old in self.dir.glob("journal-*.log"):  # ...the old journal goes
                if old.name != self.journal_path(self.generation).name:
                    old.unlink()

    def close(self) -> None:
        """Clean stop: one last snapshot (fast next start), then release the directory."""
        if self._lock_fd < 0:
            return
        try:
            self.snapshot()
        finally:
            with self.apply_lock:
                self.closed = True
            if self.journal is not None:
                self.journal.close()
                self.journal = None
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def middleware(self, app: WsgiApp) -> WsgiApp:
        def journaled(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("REQUEST_METHOD") in ("GET", "HEAD", "OPTIONS"):
                return app(environ, start_response)
            body = get_input_stream(environ).read()
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("wsgi.input_terminated", None)
            if not is_mutating(environ, body):
                return app(environ, start_response)
            captured: list[Any] = []

            def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                captured[:] = [status, headers, exc_info]
                return lambda data: None

            with self.apply_lock:
                if self.closed:  # a request still in flight at shutdown: the client must retry
                    start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                    return [b"local stack is stopping"]
                response = b"".join(app(environ, capture))
                journal, position = self.journal, 0
                if journal is not None and not _changed_nothing(environ, body, response):
                    position = journal.append(_request_of(environ, body))
                compact = position > 0 and journal is not None and journal.entries == self.snapshot_every
            if journal is not None and position:
                journal.sync(position)  # durable before the client hears back
                if compact:
                    self._snapshot_in_background(journal)
            start_response(*captured)
            return [response]

        return journaled

    def _snapshot_in_background(self, full: Journal) -> None:
        def run() -> None:
            try:
                self.snapshot(only_if=full)
            except Exception:
                log.exception("local state snapshot failed; the journal keeps everything")

        threading.Thread(target=run, name="local-state-snapshot", daemon=True).start()


def _request_of(environ: dict[str, Any], body: bytes) -> Request:
    headers = {
        key[5:].replace("_", "-").title(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    headers.pop("Content-Length", None)
    headers.pop("Transfer-Encoding", None)
    return Request(
        environ.get("REQUEST_METHOD", "POST"),
        environ.get("PATH_INFO", "/"),
        environ.get("QUERY_STRING", ""),
        headers,
        body,
    )


def wipe(directory: Path) -> bool:
    """Delete the saved state (refused while a stack runs on it). True if there was any."""
    if not directory.exists():
        return False
    lock_path = directory / "lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateInUse(f"{directory} is in use by a running local stack; stop it first") from None
        shutil.rmtree(directory)
    finally:
        os.close(fd)
    return True

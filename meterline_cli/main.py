"""The `meterline` command (typer): `tokens`, `bootstrap-admin`, `dlq`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from local.envfile import read_env_file
from meterline_cli import dlq as dead_letters
from meterline_cli import resources as res
from meterline_cli.client import ApiError, MeterlineClient, Send

app = typer.Typer(help="Operate a Meterline stack: API tokens, the first admin token, DLQ replay.")
tokens_app = typer.Typer(help="Create, list and revoke API tokens (needs an admin token).")
dlq_app = typer.Typer(help="Inspect and replay the aggregate function's dead-lettered Kinesis ranges.")
app.add_typer(tokens_app, name="tokens")
app.add_typer(dlq_app, name="dlq")

out = Console(soft_wrap=True)  # no hard wraps: tokens and ids stay copyable
err = Console(stderr=True, soft_wrap=True)
DEFAULT_ENV_FILE = Path(".local/meterline.env")
ROLES = ("admin", "viewer", "ingest")

# Tests replace this with the in-process API; None = real HTTP.
transport: Send | None = None

EnvFileOpt = Annotated[
    Path, typer.Option("--env-file", help="Fallback for --url/--token: written by `make run`.")
]
UrlOpt = Annotated[str | None, typer.Option("--url", envvar="METERLINE_URL", help="Base URL of the API.")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="METERLINE_TOKEN", help="An admin API token.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {escape(message)}")  # API details contain [field]
    return typer.Exit(code)


def _client(url: str | None, token: str | None, env_file: Path) -> MeterlineClient:
    values = read_env_file(env_file)
    url = url or values.get("METERLINE_URL")
    token = token or values.get("METERLINE_TOKEN")
    if not url or not token:
        raise _fail("set --url and --token (or METERLINE_URL / METERLINE_TOKEN, or run `make run`)")
    return MeterlineClient(url, token, send=transport)


def _call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except ApiError as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot reach the API: {exc}") from None


# -- tokens -------------------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="What the token is for (1-256 characters).")],
    role: Annotated[str, typer.Option("--role", help="admin, viewer (read-only) or ingest (POST /events).")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    env_file: EnvFileOpt = DEFAULT_ENV_FILE,
    as_json: JsonOpt = False,
) -> None:
    """Create a token; its secret is printed once and never again."""
    created = _call(_client(url, token, env_file).create_token, name, role)
    if as_json:
        out.print_json(json.dumps(created))
        return
    out.print(created["token"], highlight=False, soft_wrap=True)
    err.print(
        f"created {created['role']} token [bold]{created['name']}[/bold] ({created['id']}); "
        "store the secret now: it is not shown again"
    )


@tokens_app.command("list")
def tokens_list(
    url: UrlOpt = None,
    token: TokenOpt = None,
    env_file: EnvFileOpt = DEFAULT_ENV_FILE,
    as_json: JsonOpt = False,
) -> None:
    """List tokens (never their secrets)."""
    items = _call(_client(url, token, env_file).list_tokens)
    if as_json:
        out.print_json(json.dumps(items))
        return
    table = Table("id", "name", "role", "hint", "created_at")
    for t in items:
        table.add_row(t["id"], t["name"], t["role"], t.get("hint", ""), t["created_at"])
    out.print(table)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[str, typer.Argument(help="The token's id (see `tokens list`).")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    env_file: EnvFileOpt = DEFAULT_ENV_FILE,
) -> None:
    """Revoke a token: it fails from its next request on. The last admin token cannot be revoked."""
    _call(_client(url, token, env_file).revoke_token, token_id)
    err.print(f"revoked {token_id}")


# -- bootstrap ----------------------------------------------------------------------------------------


@app.command("bootstrap-admin")
def bootstrap_admin(
    stack_name: Annotated[
        str | None, typer.Option("--stack-name", help="The deployed CloudFormation stack.")
    ] = None,
    config_table: Annotated[
        str | None, typer.Option("--config-table", help="The config table, instead of --stack-name.")
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Name of the token.")] = "bootstrap-admin",
    force: Annotated[bool, typer.Option("--force", help="Create one even if admin tokens exist.")] = False,
) -> None:
    """Write the first admin token straight into the config table with your AWS credentials."""
    from shared.auth.store import TokenStore
    from shared.auth.tokens import Role

    if not (stack_name or config_table):
        raise _fail("give --stack-name (or --config-table)")
    table = config_table or res.config_table_of_stack(str(stack_name))
    store = TokenStore(table, client=boto3.session.Session().client("dynamodb"))
    existing = store.admin_count()
    if existing and not force:
        raise _fail(f"{existing} admin token(s) already exist in {table}; use --force to add another")
    token, raw = store.issue(Role.ADMIN, name)
    out.print(raw, highlight=False, soft_wrap=True)
    err.print(f"created admin token {token.id} in {table}; store the secret now: it is not shown again")


# -- dlq ----------------------------------------------------------------------------------------------

StackOpt = Annotated[str | None, typer.Option("--stack-name", help="The deployed CloudFormation stack.")]
LocalOpt = Annotated[bool, typer.Option("--local", help="The `make run` stack (reads --env-file).")]


def _resources(stack_name: str | None, local: bool, env_file: Path) -> res.Resources:
    if stack_name:
        return res.from_stack(stack_name)
    if local:
        return res.local(read_env_file(env_file))
    raise _fail("give --stack-name or --local")


@dlq_app.command("list")
def dlq_list(
    stack_name: StackOpt = None,
    local: LocalOpt = False,
    env_file: EnvFileOpt = DEFAULT_ENV_FILE,
    as_json: JsonOpt = False,
) -> None:
    """Show the dead-lettered ranges (peek: the messages stay visible)."""
    found = _resources(stack_name, local, env_file)
    letters = dead_letters.receive_all(found.client("sqs"), found.dlq_url, visibility_timeout=0)
    if as_json:
        out.print_json(json.dumps([x.to_dict() for x in letters]))
        return
    table = Table("message id", "shard", "records", "first sequence", "last sequence", "condition", "at")
    for x in letters:
        table.add_row(
            x.message_id,
            x.shard_id,
            str(x.batch_size),
            x.start_sequence,
            x.end_sequence,
            x.condition,
            x.timestamp,
        )
    out.print(table)


@dlq_app.command("replay")
def dlq_replay(
    message_id: Annotated[
        list[str] | None, typer.Option("--message-id", help="Only these messages (repeatable; default: all).")
    ] = None,
    stack_name: StackOpt = None,
    local: LocalOpt = False,
    env_file: EnvFileOpt = DEFAULT_ENV_FILE,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=10000)] = 500,
    force: Annotated[
        bool, typer.Option("--force", help="Replay even when some counters are overtaken (see docs).")
    ] = False,
    visibility_timeout: Annotated[int, typer.Option("--visibility-timeout", min=30)] = 900,
) -> None:
    """Run dead-lettered ranges through the aggregator again; delete each message once replayed."""
    found = _resources(stack_name, local, env_file)
    aggregator = _aggregator(found)
    sqs, kinesis = found.client("sqs"), found.client("kinesis")
    letters = dead_letters.receive_all(sqs, found.dlq_url, visibility_timeout=visibility_timeout)
    chosen = [x for x in letters if not message_id or x.message_id in set(message_id)]
    for other in letters:
        if other not in chosen:
            _release(sqs, found.dlq_url, other)
    if not chosen:
        err.print("nothing to replay")
        return
    failed = 0
    for letter in chosen:
        if not _replay_one(aggregator, sqs, kinesis, found.dlq_url, letter, batch_size, force):
            _release(sqs, found.dlq_url, letter)
            failed += 1
    if failed:
        raise _fail(f"{failed} of {len(letters)} dead-lettered range(s) not replayed (messages kept)", 2)


def _release(sqs: Any, dlq_url: str, letter: dead_letters.DeadLetter) -> None:
    """Make a received but unreplayed message visible again at once (`dlq list` shows it)."""
    sqs.change_message_visibility(QueueUrl=dlq_url, ReceiptHandle=letter.receipt_handle, VisibilityTimeout=0)


def _replay_one(
    aggregator: Any,
    sqs: Any,
    kinesis: Any,
    dlq_url: str,
    letter: dead_letters.DeadLetter,
    size: int,
    force: bool,
) -> bool:
    label = f"{letter.shard_id} {letter.start_sequence}..{letter.end_sequence}"
    records = dead_letters.read_range(kinesis, letter)
    if len(records) != letter.batch_size:
        err.print(
            f"[red]{label}:[/red] found {len(records)} of {letter.batch_size} records in the stream "
            "(expired or trimmed?); not replayed"
        )
        return False
    check = dead_letters.preflight(aggregator, letter, records)
    if check.overtaken:
        err.print(
            f"[yellow]{label}:[/yellow] {len(check.overtaken)} of {check.counters} counters were moved past "
            "this range by later records of the shard; whether the range was applied to them before the "
            "failure cannot be told, so a replay leaves them as they are:"
        )
        for name in check.overtaken[:20]:
            err.print(f"  {escape(name)}")
        if not force:
            err.print("  not replayed; --force replays the rest and deletes the message")
            return False
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task(label, total=len(records))
        result = dead_letters.replay(aggregator, records, size, lambda n: bar.advance(task, n))
    sqs.delete_message(QueueUrl=dlq_url, ReceiptHandle=letter.receipt_handle)
    err.print(
        f"{label}: replayed {result.records} records ({result.stored} events stored, "
        f"{result.counters_written} counter writes); message {letter.message_id} deleted"
    )
    return True


def _aggregator(found: res.Resources) -> Any:
    """The aggregate function's own object graph, pointed at the stack's resources."""
    os.environ.update(found.env())
    from shared import bootstrap

    bootstrap.reset()
    aggregator = bootstrap.aggregator()
    # A dead-lettered range is older than what its shard's journal flushed: apply it directly
    # (the counters' own positions keep it exact), not through the journal (journal.py).
    aggregator.flush_seconds = None
    return aggregator


def main() -> None:
    app()

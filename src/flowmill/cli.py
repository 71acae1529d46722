"""The ``flowmill`` command line. Thin: parses arguments, calls library code."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from flowmill import jsonutil
from flowmill.cli_api import register as register_api_commands
from flowmill.cli_executions import app as executions_app
from flowmill.cli_projections import register as register_projection_commands
from flowmill.cli_quotas import register as register_quota_commands
from flowmill.cli_retention import register as register_retention_commands
from flowmill.cli_triggers import register as register_trigger_commands
from flowmill.cli_workflows import app as workflows_app
from flowmill.config import Settings
from flowmill.domain.errors import DefinitionError, Issue

app = typer.Typer(
    name="flowmill",
    help="Flowmill: a durable workflow engine. Run workflows locally, serve the API, "
    "run workers, manage the database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Markdown joins the lines of a docstring paragraph (rich mode keeps each break).
    rich_markup_mode="markdown",
)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
cred_app = typer.Typer(
    help="Manage credentials (sealed with AES-256-GCM; their secrets are never shown).",
    no_args_is_help=True,
)
app.add_typer(cred_app, name="credentials")
register_api_commands(app)
register_trigger_commands(app)
register_quota_commands(app)
register_projection_commands(app)
register_retention_commands(app)
app.add_typer(executions_app, name="executions")
app.add_typer(workflows_app, name="workflows")
err = Console(stderr=True, soft_wrap=True)

FileArg = Annotated[
    Path,
    typer.Argument(
        help="Workflow definition (.json, .yaml or .yml) in the seed format.",
        exists=False,
        dir_okay=False,
    ),
]


def _settings() -> Settings:
    return Settings()


def _fail(message: str, hint: str | None = None, code: int = 2) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    if hint:
        err.print(f"[dim]{hint}[/dim]")
    return typer.Exit(code)


def print_issues(issues: list[Issue], path: Path) -> None:
    """Every problem of a definition, one per line, naming the node or edge."""
    if len(issues) == 1 and issues[0].code in ("io", "syntax"):
        err.print(f"[red]error:[/red] {escape(issues[0].path)}: {escape(issues[0].message)}")
        return
    count = f"{len(issues)} problem{'s' if len(issues) != 1 else ''}"
    err.print(f"[red]{escape(str(path))}: the workflow is not valid ({count})[/red]")
    for issue in issues:
        where = escape(issue.path) if issue.path else "(workflow)"
        err.print(f"  [bold]{where}[/bold]: {escape(issue.message)}")


def _print_issues(e: DefinitionError, path: Path) -> None:
    print_issues(e.issues, path)


def _parse_input(raw: str | None) -> Any:
    if raw is None:
        return {}
    text = raw
    if raw.startswith("@"):
        try:
            text = Path(raw[1:]).read_text()
        except OSError as e:
            raise _fail(f"cannot read input file {raw[1:]}: {e.strerror}") from e
    try:
        return jsonutil.loads(text)
    except ValueError as e:
        raise _fail(
            f"--input is not valid JSON: {e}",
            'Quote it for your shell, e.g. --input \'{"message": "hello"}\', or pass @file.json.',
        ) from e


@app.command()
def run(
    file: FileArg,
    input: Annotated[
        str | None,
        typer.Option("--input", "-i", help="Trigger data as JSON, or @file.json."),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with the result, no display.")
    ] = False,
    tenant: Annotated[
        str | None, typer.Option(help="Tenant to run as (default: the file's tenant_id).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Give up waiting after this many seconds.")
    ] = None,
) -> None:
    """Run a workflow file to completion here, showing each node's progress.

    The workflow is stored in the local database (a new version when it changed) and
    executed on the embedded engine. Exit status: 0 when the execution succeeded, 1 when
    it failed or was cancelled, 2 when the file or the input is invalid.
    """
    from flowmill.files import read_definition

    data = _parse_input(input)
    try:
        document = read_definition(file)
    except DefinitionError as e:
        _print_issues(e, file)
        raise typer.Exit(2) from e
    code = asyncio.run(_run(file, document, data, tenant, timeout, json_output=json_output))
    raise typer.Exit(code)


async def _run(
    file: Path,
    document: dict[str, Any],
    data: Any,
    tenant: str | None,
    wait_s: float | None,
    *,
    json_output: bool,
) -> int:
    from flowmill.domain.states import ExecutionStatus
    from flowmill.progress import RunProgress
    from flowmill.runs import register
    from flowmill.runtime import open_runtime

    settings = _settings()
    async with open_runtime(settings, kind="cli") as rt:
        try:
            workflow_id, version, tenant_id = await register(rt, document, tenant)
        except DefinitionError as e:
            _print_issues(e, file)
            return 2
        compiled = await rt.engine.compiled(workflow_id, version)
        progress = RunProgress(compiled)
        unsubscribe = rt.engine.hub.subscribe(progress.listener)
        live = None
        if not json_output and sys.stdout.isatty():
            live = Live(
                progress.table(),
                console=Console(),
                refresh_per_second=12,
                get_renderable=progress.table,
            )
        async with rt.engine.running():
            if live is not None:
                live.start()
            try:
                execution_id = await rt.engine.start_execution(
                    tenant_id=tenant_id,
                    workflow_id=workflow_id,
                    version=version,
                    data=data,
                    trigger_type="manual",
                )
                progress.watch(execution_id)
                execution = await rt.engine.wait(execution_id, timeout=wait_s)
                if execution.status.terminal:
                    progress.finish()
            finally:
                if live is not None:
                    live.stop()
                unsubscribe()
        from flowmill.runs import RunReport, execution_logs

        report = RunReport(
            execution,
            await rt.executions.node_runs(execution.id),
            await execution_logs(rt, tenant_id, execution.id),
        )
    result = report.as_json()
    if json_output:
        sys.stdout.write(jsonutil.dumps(result) + "\n")
    else:
        console = Console(highlight=False)
        if live is None:
            console.print(progress.table())
        from flowmill.cli_local import print_logs

        print_logs(console, report.logs)
        status = execution.status
        color = "green" if status is ExecutionStatus.SUCCEEDED else "red"
        console.print(f"execution {execution.id} [{color}]{status.value}[/{color}]")
        if execution.error:
            console.print(
                f"[red]{escape(str(execution.error.get('type')))}: "
                f"{escape(str(execution.error.get('message')))}[/red]"
            )
        if execution.output is not None:
            console.print_json(jsonutil.dumps(execution.output))
    if not execution.status.terminal:
        err.print(
            f"[yellow]still {execution.status.value} after {wait_s} s; it goes on "
            "when a worker runs again[/yellow]"
        )
        return 1
    return 0 if execution.status is ExecutionStatus.SUCCEEDED else 1


@app.command()
def validate(file: FileArg) -> None:
    """Check a workflow file: shapes, node configs, edges, cycles, reachability.

    Prints every problem with where it is; exits 1 if there is any. Says which canonical
    form each seed shape (conditional steps with trueSteps/falseSteps, loop steps,
    rateLimit*/retry* fields, BullMQ retry options) was read as.
    """
    from flowmill.files import read_definition
    from flowmill.validation import check_document

    try:
        document = read_definition(file)
    except DefinitionError as e:
        _print_issues(e, file)
        raise typer.Exit(1) from e
    report = check_document(document, expressions_enabled=_sandbox_available())
    for note in report.notes:
        Console(highlight=False, soft_wrap=True).print(f"[cyan]note[/cyan] {escape(note)}")
    if report.compiled is None:
        print_issues(report.issues, file)
        raise typer.Exit(1)
    Console().print(
        f"[green]{file}: valid[/green] — {len(report.compiled.nodes)} nodes, "
        f"{len(report.compiled.workflow.edges)} edges"
    )


def _sandbox_available() -> bool:
    return _settings().sandbox_enabled


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Steps run at once (default FLOWMILL_CONCURRENCY).")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve /health, /ready, /metrics on this port (FLOWMILL_METRICS_PORT)."),
    ] = None,
) -> None:
    """Run a worker: take jobs, run steps, recover steps of workers that died.

    With FLOWMILL_REDIS_URL it takes jobs from BullMQ; without, it works on the
    embedded database alone (picking up what stopped processes left). Stops cleanly on
    SIGTERM or Ctrl-C, giving running steps FLOWMILL_SHUTDOWN_GRACE_S to finish.
    """
    settings = _settings()
    if concurrency is not None:
        settings.concurrency = concurrency
    if metrics_port is not None:
        settings.metrics_port = metrics_port
    asyncio.run(_worker(settings))


async def _worker(settings: Settings) -> None:
    import signal

    from flowmill.background import running_background
    from flowmill.runtime import open_runtime

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with (
        open_runtime(settings, kind="worker") as rt,
        running_background(
            rt, kind="worker", projector=False, ops_port=settings.metrics_port, freeze_heap=True
        ) as bg,
    ):
        if stopping.is_set():
            return
        task = asyncio.create_task(rt.engine.run(), name="engine-worker")
        if bg.ops_port:
            err.print(f"health and metrics on port {bg.ops_port}")
        err.print(
            f"worker {rt.engine.worker_id} running "
            f"({'BullMQ' if settings.distributed else 'embedded'}, "
            f"concurrency {settings.concurrency})"
        )
        done, _ = await asyncio.wait(
            {task, asyncio.create_task(stopping.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if task not in done:
            err.print("stopping: finishing running steps…")
            await rt.engine.stop()
        await task


@app.command()
def queues(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Show how many jobs each BullMQ queue holds, per state (needs FLOWMILL_REDIS_URL).

    wait and prioritized: ready for a worker; delayed: waiting for their time (durable
    delays, retry backoff); active: being run; completed and failed: finished jobs
    kept for dashboards (FLOWMILL_QUEUE_KEEP_*).
    """
    settings = _settings()
    if not settings.redis_url:
        raise _fail(
            "no queue to show: Flowmill runs on its in-process queue",
            "set FLOWMILL_REDIS_URL (e.g. redis://127.0.0.1:6379/0) to use BullMQ",
        )
    counts = asyncio.run(_queue_counts(settings))
    if as_json:
        typer.echo(jsonutil.dumps(counts))
        return
    from rich.table import Table

    from flowmill.queue.bullmq import JOB_STATES

    table = Table(title=f"BullMQ queues on {_redact(settings.redis_url)}", title_justify="left")
    table.add_column("queue")
    for state in JOB_STATES:
        table.add_column(state, justify="right")
    for name, by_state in counts.items():
        table.add_row(name, *(str(by_state[s]) for s in JOB_STATES))
    out = Console()
    out.width = max(out.width, 110)  # a pipe gets 80 columns: too few for the states
    out.print(table)


async def _queue_counts(settings: Settings) -> dict[str, dict[str, int]]:
    from redis.exceptions import RedisError

    from flowmill.runtime import bullmq_queue

    queue = bullmq_queue(settings)
    try:
        counts = await queue.counts()
    except (RedisError, OSError) as e:
        raise _fail(
            f"cannot reach Redis at {_redact(settings.redis_url or '')}: {e}",
            "check that Redis is running and FLOWMILL_REDIS_URL is right",
        ) from None
    finally:
        await queue.close()
    return counts


def _redact(url: str) -> str:
    """The URL without its password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


TenantOpt = Annotated[str, typer.Option("--tenant", help="Tenant that owns the credential.")]


@cred_app.command("create")
def credentials_create(
    tenant: TenantOpt,
    name: Annotated[str, typer.Option(help="Name nodes use, e.g. http_request credential.")],
    type_: Annotated[str, typer.Option("--type", help="bearer, basic, header or query.")],
    data: Annotated[
        str, typer.Option(help='The secret as JSON, e.g. \'{"token": "..."}\', or @file.json.')
    ],
) -> None:
    """Store a credential. Prints its id; the secret is sealed and never shown again."""
    secret = _parse_input(data)
    if not isinstance(secret, dict):
        raise _fail("--data must be a JSON object")

    async def _go() -> str:
        from flowmill.credentials.crypto import CredentialError
        from flowmill.credentials.vault import DuplicateCredentialError
        from flowmill.runtime import open_store

        async with open_store(_settings()) as store:
            await store.workflows.ensure_tenant(tenant)
            try:
                info = await store.credentials.create(tenant, name, type_, secret)
            except (ValueError, DuplicateCredentialError, CredentialError) as e:
                raise _fail(str(e)) from None
            return info.id

    print(asyncio.run(_go()))


@cred_app.command("list")
def credentials_list(tenant: TenantOpt) -> None:
    """List a tenant's credentials: name, type, key id, dates (no secrets)."""
    from flowmill.runtime import open_store

    async def _go() -> list[Any]:
        async with open_store(_settings()) as store:
            return await store.credentials.list(tenant)

    for c in asyncio.run(_go()):
        print(f"{c.id}  {c.name}  {c.type}  key={c.key_id}  updated={c.updated_at.isoformat()}")


@cred_app.command("delete")
def credentials_delete(
    tenant: TenantOpt, credential_id: Annotated[str, typer.Argument(help="Credential id.")]
) -> None:
    """Delete a credential."""
    from flowmill.runtime import open_store

    async def _go() -> bool:
        async with open_store(_settings()) as store:
            return await store.credentials.delete(tenant, credential_id)

    if not asyncio.run(_go()):
        raise _fail(f"tenant {tenant} has no credential {credential_id}", code=1)


@cred_app.command("rotate")
def credentials_rotate() -> None:
    """Re-seal every credential with the active key (the first of FLOWMILL_SECRET_KEYS).

    Put the new key first and keep the old one after it, run this, then drop the old key.
    """
    from flowmill.runtime import open_store

    async def _go() -> int:
        async with open_store(_settings()) as store:
            return await store.credentials.rotate()

    print(f"re-sealed {asyncio.run(_go())} credential(s)")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Apply database migrations (also done automatically on start)."""
    from flowmill.store import migrate
    from flowmill.store.database import connect

    settings = _settings()

    async def _go() -> tuple[str | None, str | None]:
        db = connect(settings.database)
        try:
            return await migrate.upgrade(db, revision)
        finally:
            await db.close()

    before, after = asyncio.run(_go())
    if before == after:
        Console().print(f"database is up to date (revision {after})")
    else:
        Console().print(f"migrated {before or 'empty database'} → {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the newest one available."""
    from flowmill.store import migrate
    from flowmill.store.database import connect

    settings = _settings()

    async def _go() -> str | None:
        db = connect(settings.database)
        try:
            return await db.read(migrate.current_revision)
        finally:
            await db.close()

    current = asyncio.run(_go())
    Console().print(f"database: {current or 'empty'}; newest: {migrate.head_revision()}")


def _show_version(value: bool) -> None:
    if value:
        from flowmill import __version__

        typer.echo(f"flowmill {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    pass


def _flags_without_type_labels(command: Any) -> None:
    """Show boolean flags as ``--json``, not ``--json <bool>`` (they take no value).

    Typer labels every option with its type in the help; a flag gets an empty label
    instead, on every command and group (their --help options included).
    """
    from typer import _click

    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    help_option = command.get_help_option(_click.Context(command))
    if help_option is not None:
        help_option.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _flags_without_type_labels(sub)


def main() -> None:
    """Entry point of the ``flowmill`` script."""
    from flowmill.logs import configure

    settings = _settings()
    level = settings.log_level
    # One-shot commands keep their output clean unless a level is asked for; the
    # services (serve, worker, scheduler) log at the configured level, info by default,
    # so recoveries and reconnections show up.
    services = {"serve", "worker", "scheduler"}
    if "FLOWMILL_LOG_LEVEL" not in os.environ and not services & set(sys.argv[1:2]):
        level = "warning"
    configure(level, settings.log_format)
    command = typer.main.get_command(app)
    _flags_without_type_labels(command)
    try:
        command(prog_name="flowmill")
    except Exception as e:
        from flowmill.cli_errors import explain

        known = explain(e, settings.database, settings.redis_url)
        if known is None:
            raise  # a bug: its traceback is what a report needs
        err.print(f"[red]error:[/red] {escape(known.message)}")
        err.print(f"[dim]{escape(known.hint)}[/dim]")
        sys.exit(known.code)

"""The ``callmeter`` command line (typer + rich)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from callmeter.config import Settings, get_settings
from callmeter.errors import CallmeterError
from callmeter.kit import migrate as migrations
from callmeter.kit.runtime import Runtime
from callmeter.media.livekit import livekit_for

T = TypeVar("T")

app = typer.Typer(
    help="callmeter: pay-per-minute video calls billed by the server's clock.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
coins_app = typer.Typer(help="Move coins.", no_args_is_help=True)
ledger_app = typer.Typer(help="Audit the ledger.", no_args_is_help=True)
purchases_app = typer.Typer(help="Coin purchases (Stripe).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(coins_app, name="coins")
app.add_typer(ledger_app, name="ledger")
app.add_typer(purchases_app, name="purchases")

console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    try:
        return get_settings()
    except ValueError as exc:
        err_console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _run(work: Callable[[Runtime], Awaitable[T]], *, long_statements: bool = False) -> T:
    """Run ``work`` with a runtime for the configured database; domain errors exit 1.
    ``long_statements``: no statement timeout (migrations, a whole-ledger audit)."""

    async def main() -> T:
        settings = _settings()
        if long_statements:
            settings = settings.model_copy(update={"db_statement_timeout_seconds": 0})
        runtime = Runtime.create(settings, livekit=livekit_for(settings))
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(main())
    except CallmeterError as exc:
        err_console.print(f"[red]error:[/red] {exc.detail}")
        raise typer.Exit(1) from exc


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on", min=1, max=65535)] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            help="API processes sharing the port; more than 1 also starts the meter as one "
            "`callmeter worker` process (unless --no-meter)",
            min=1,
            max=64,
        ),
    ] = 1,
    no_meter: Annotated[
        bool, typer.Option("--no-meter", help="do not run the meter loop in this process")
    ] = False,
    fd: Annotated[
        int | None, typer.Option(hidden=True, help="serve on this inherited listening socket")
    ] = None,
) -> None:
    """Serve the HTTP API (and, unless --no-meter, the meter loop)."""
    settings = _settings()
    if workers > 1:
        from callmeter.kit.supervise import supervise

        meter = "without" if no_meter else "with one worker process for the"

        def listening(bound: int) -> None:  # once the port is ours: not before a refusal
            console.print(
                f"callmeter serving on [bold]http://{host}:{bound}[/bold] ({settings.env}, "
                f"{workers} API processes, {meter} meter)"
            )

        code = supervise(host, port, workers=workers, meter=not no_meter, listening=listening)
        raise typer.Exit(code)
    _serve_one(settings, host, port, meter=not no_meter, fd=fd)


def _serve_one(settings: Settings, host: str, port: int, *, meter: bool, fd: int | None) -> None:
    import socket

    import uvicorn

    from callmeter.app import create_app
    from callmeter.kit.http_server import RequestLimits, limited_http_protocol
    from callmeter.kit.memory import freeze_startup_objects

    if fd is None:
        console.print(
            f"callmeter serving on [bold]http://{host}:{port}[/bold] ({settings.env}, "
            f"{'with' if meter else 'without'} meter)"
        )
    limits = RequestLimits(
        max_header_bytes=settings.max_header_bytes,
        max_header_count=settings.max_header_count,
        read_timeout_seconds=settings.request_read_timeout_seconds,
    )
    app_ = create_app(settings, meter=meter)
    config = uvicorn.Config(
        app_,
        host=host,
        port=port,
        log_level="info" if fd is None else "warning",
        http=limited_http_protocol(limits),
    )
    server = uvicorn.Server(config)
    freeze_startup_objects()
    sockets = None if fd is None else [socket.socket(fileno=fd)]
    server.run(sockets=sockets)


@app.command()
def worker() -> None:
    """Run the meter loop alone (for deployments with several API processes)."""
    import logging
    import signal

    from callmeter.kit.memory import freeze_startup_objects
    from callmeter.meter.loop import run_meter

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings()

    async def work(runtime: Runtime) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        console.print(f"meter worker ticking every {settings.meter_tick_seconds} s")
        freeze_startup_objects()
        await run_meter(runtime, stop)

    _run(work)


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic migrations)."""

    async def work(runtime: Runtime) -> str | None:
        await migrations.upgrade(runtime.engine)
        return await migrations.current_revision(runtime.engine)

    revision = _run(work, long_statements=True)
    console.print(f"database at revision [bold]{revision}[/bold]")


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="client, host or admin")],
    password: Annotated[
        str | None, typer.Option(help="the password (asked for when omitted)")
    ] = None,
    display_name: Annotated[str | None, typer.Option(help="name shown to others")] = None,
) -> None:
    """Create a user (the only way to create an admin)."""
    from pydantic import TypeAdapter, ValidationError

    from callmeter.auth import service
    from callmeter.auth.schemas import Password, Username
    from callmeter.kit.text import DisplayName
    from callmeter.models import Role

    try:
        parsed_role = Role(role)
    except ValueError:
        err_console.print("[red]error:[/red] --role must be client, host or admin")
        raise typer.Exit(2) from None
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        TypeAdapter(Username).validate_python(username)
        TypeAdapter(Password).validate_python(password)
        if display_name is not None:
            display_name = TypeAdapter(DisplayName).validate_python(display_name)
    except ValidationError as exc:
        err_console.print(f"[red]error:[/red] {exc.errors()[0]['msg']}")
        raise typer.Exit(2) from exc

    async def work(runtime: Runtime) -> int:
        async with runtime.sessionmaker.begin() as session:
            user = await service.create_user(
                session,
                hasher=runtime.hasher,
                username=username,
                password=password,
                role=parsed_role,
                display_name=display_name,
                now=runtime.clock.now(),
            )
            return user.id

    user_id = _run(work)
    console.print(f"created {parsed_role} [bold]{username.lower()}[/bold] (id {user_id})")


@coins_app.command("grant")
def coins_grant(
    username: str,
    amount: Annotated[int, typer.Argument(min=1, max=10**12)],
    note: Annotated[str | None, typer.Option(help="why the coins were granted")] = None,
    key: Annotated[
        str | None,
        typer.Option(help="idempotency key: the same key never grants twice"),
    ] = None,
) -> None:
    """Grant coins to a client's wallet."""
    from callmeter.auth import repository as users
    from callmeter.errors import NotFound
    from callmeter.ledger import service as ledger

    idempotency_key = f"cli-grant:{key or uuid.uuid4()}"

    async def work(runtime: Runtime) -> tuple[bool, int]:
        async with runtime.sessionmaker.begin() as session:
            user = await users.get_user_by_username(session, username)
            if user is None:
                raise NotFound(f"no user named {username!r}")
            result = await ledger.grant(
                session,
                user_id=user.id,
                amount=amount,
                idempotency_key=idempotency_key,
                now=runtime.clock.now(),
                note=note,
            )
            account = await ledger.account_for_user(session, user.id)
            return result.created, account.balance

    created, balance = _run(work)
    verb = "granted" if created else "already granted (same key)"
    console.print(f"{verb} {amount} coins to [bold]{username}[/bold]; balance now {balance}")


@ledger_app.command("check")
def ledger_check() -> None:
    """Verify every ledger and call invariant; exit 1 with a report when one fails."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from callmeter.ledger.check import LedgerReport
    from callmeter.payments.check import check_everything

    # a bar for the calls, read in chunks, when a person watches (stdout is a terminal)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = bar.add_task("checking the ledger…", total=None)

    def advance(done: int, total: int) -> None:
        bar.update(task, description="checking calls…", completed=done, total=total)

    async def work(runtime: Runtime) -> LedgerReport:
        async with runtime.read_sessionmaker() as session:
            return await check_everything(
                session, progress=advance, hold_days=runtime.settings.payout_hold_days
            )

    with bar:
        report = _run(work, long_statements=True)
    table = Table(title="ledger totals")
    table.add_column("total")
    table.add_column("coins / rows", justify="right")
    for name, value in report.totals.items():
        table.add_row(name, str(value))
    console.print(table)
    if report.ok:
        console.print("[green]ledger check passed[/green]: every invariant holds")
        return
    err_console.print(f"[red]ledger check FAILED[/red]: {len(report.problems)} problem(s)")
    for problem in report.problems:
        err_console.print(f"  - {problem}")
    raise typer.Exit(1)


@app.command()
def demo() -> None:
    """Create demo users and coins (safe to run again)."""
    from callmeter.demo import DEMO_PASSWORD, seed

    results = _run(seed)
    table = Table(title="demo logins (password: " + DEMO_PASSWORD + ")")
    for column in ("username", "role", "coins", ""):
        table.add_column(column)
    for demo_user, created in results:
        table.add_row(
            demo_user.username,
            demo_user.role,
            str(demo_user.coins or ""),
            "created" if created else "exists",
        )
    console.print(table)


@app.command()
def openapi(
    out: Annotated[Path | None, typer.Option(help="write here instead of printing")] = None,
) -> None:
    """The API's OpenAPI document (the web client's types are generated from it: `make api`),
    for the default configuration."""
    import json
    import os

    from callmeter.app import create_app

    # the defaults, whatever this shell's CALLMETER_* say: the document is committed
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CALLMETER_")}
    try:
        document = create_app(Settings(_env_file=None), meter=False).openapi()
    finally:
        os.environ.update(saved)
    text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if out is None:
        console.print_json(text)
    else:
        out.write_text(text, encoding="utf-8")


_SPAN = {"d": 86_400, "h": 3_600, "m": 60}


def _span(text: str) -> timedelta:
    """``3d``, ``12h`` or ``90m``: a span of at most 30 days."""
    unit, number = text[-1:].lower(), text[:-1]
    if (
        unit not in _SPAN
        or not number.isdigit()
        or not 0 < int(number) * _SPAN[unit] <= 30 * 86_400
    ):
        raise typer.BadParameter("a span like 3d, 12h or 90m, at most 30 days")
    return timedelta(seconds=int(number) * _SPAN[unit])


@purchases_app.command("reconcile")
def purchases_reconcile(
    since: Annotated[
        str, typer.Option(help="look at checkouts created this long ago and later: 3d, 12h, 90m")
    ] = "3d",
) -> None:
    """Fulfil paid Stripe checkouts whose webhook never arrived (idempotent: a purchase
    already credited is left as it is)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from callmeter.payments.provider import provider
    from callmeter.payments.reconcile import Reconciled, reconcile

    span = _span(since)
    bar = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=console, transient=True,
        disable=not console.is_terminal,
    )  # fmt: skip
    task = bar.add_task("listing completed checkouts…", total=None)

    def advance(report: Reconciled) -> None:
        bar.update(
            task,
            description=f"{report.seen} checkouts: {len(report.fulfilled)} fulfilled now, "
            f"{report.already} already",
        )

    async def work(runtime: Runtime) -> Reconciled:
        if not runtime.settings.stripe_enabled:
            err_console.print(
                "the test payment provider is in use (no Stripe keys): its payments are "
                "delivered in-process and there is nothing to reconcile"
            )
        found = provider(runtime)
        return await reconcile(runtime, found, runtime.clock.now() - span, advance)

    with bar:
        report = _run(work)
    table = Table(title=f"checkouts completed in the last {since}")
    table.add_column("")
    table.add_column("count", justify="right")
    for name, value in (
        ("listed", report.seen),
        ("fulfilled now", len(report.fulfilled)),
        ("already fulfilled", report.already),
        ("payment pending", report.unpaid),
        ("not callmeter's", report.not_ours),
        ("other", len(report.other)),
    ):
        table.add_row(name, str(value))
    console.print(table)
    for purchase_id in report.fulfilled:
        console.print(f"fulfilled purchase {purchase_id}")
    for line in report.other:
        console.print(f"[yellow]{line}[/yellow]")

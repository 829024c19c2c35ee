"""What every billrun command shares: options, refusals, the runtime, progress."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import typing
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from typer.models import ArgumentInfo, OptionInfo

from application.billing.usage_csv import FieldError, NotInCalendar, parse_date, parse_decimal
from domain.shared.inputs import InputRefused, check_text
from entrypoints import output
from entrypoints.refusals import REFUSALS, UsageError
from entrypoints.runtime import Runtime, open_runtime
from entrypoints.tenant_choice import chosen_tenant
from infrastructure.settings import Settings
from infrastructure.tenancy import acting_as, command_line_principal

# Command modules import UsageError from here, where it always was.
__all__ = ["UsageError"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def date_parameter(text: str) -> date:
    """typer's parser for a date option: the one date rule (YYYY-MM-DD, and a date
    the calendar has), refused with its message and the option's name, exit 2."""
    try:
        return parse_date(text)
    except FieldError as error:
        raise typer.BadParameter(str(error)) from None


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON on stdout instead of a table.")]
AccountArgument = Annotated[str, typer.Argument(help="Account id, e.g. ACME-001.")]
DateOption = Annotated[
    date, typer.Option(parser=date_parameter, metavar="YYYY-MM-DD", show_default=False)
]
AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--recorded-at",
        "--as-of",
        help="Recording time, not a business date: rebuild the state from the events "
        "recorded up to this instant (ISO 8601, e.g. 2026-04-01T09:30:00Z; a date "
        "means its midnight UTC). --as-of is the older name of this option.",
        show_default=False,
    ),
]
VersionOption = Annotated[
    int | None, typer.Option("--version", min=1, help="Rebuild the state at this event version.")
]


VerboseFlag = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log progress to stderr (as billrun -v does).")
]


def log_verbosely(verbose: bool) -> None:
    """`-v` after a long-running command's name means what `billrun -v` means."""
    if verbose:
        logging.getLogger().setLevel(logging.INFO)


def refusals(command: Callable[P, R]) -> Callable[P, R]:
    """Turn billrun's refusals into a clear message on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            _check_text_arguments(command, kwargs)
            return command(*args, **kwargs)
        except REFUSALS as error:
            # The message quotes the user's input: escape it so it is never read as
            # markup, and never wrap it, so each problem stays on one line.
            output.errors.print(
                f"[red]error:[/red] {escape(str(error))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper


def _check_text_arguments(command: Callable[..., object], arguments: dict[str, object]) -> None:
    """Every text option and argument passes the rules of domain/shared/inputs.py (no
    control characters, surrogates or bidi controls; bounded length) before the
    command runs: what a command stores, every later run reads back."""
    for name, value in arguments.items():
        for text in value if isinstance(value, list | tuple) else [value]:
            if not isinstance(text, str):
                continue
            try:
                check_text(text, max_length=MAX_ARGUMENT_LENGTH)
            except InputRefused as error:
                raise UsageError(f"{_shown_name(command, name)}: {error}") from None


def _shown_name(command: Callable[..., object], name: str) -> str:
    """A parameter as the user typed it: `--amount`, or an argument's `ACCOUNT`."""
    try:
        hint = typing.get_type_hints(command, include_extras=True).get(name)
    except (NameError, TypeError):
        hint = None
    for info in getattr(hint, "__metadata__", ()):
        if isinstance(info, OptionInfo):
            declared = [d for d in info.param_decls or () if d.startswith("--")]
            return declared[0] if declared else "--" + name.replace("_", "-")
        if isinstance(info, ArgumentInfo):
            return name.upper()
    return name


MAX_ARGUMENT_LENGTH = 1000


def chosen_settings() -> Settings:
    """The environment's settings, pointed at the tenant `--tenant` named (else
    BILLRUN_TENANT's, else the default tenant)."""
    settings = Settings.from_environment()
    tenant = chosen_tenant()
    return settings.for_tenant(tenant) if tenant else settings


@contextmanager
def runtime(actor: str = "cli") -> Iterator[Runtime]:
    """The chosen tenant's runtime; every event written inside records `actor`
    (`cli`, or `worker` for the background services) and the OS user."""
    settings = chosen_settings()
    principal = command_line_principal(settings.tenant, actor)
    with open_runtime(settings) as opened, acting_as(principal):
        try:
            yield opened
        finally:
            if opened.has_read_side:
                for warning in opened.read_side.warnings:
                    output.errors.print(
                        f"[yellow]warning:[/yellow] {escape(warning)}", soft_wrap=True
                    )


def parse_instant(text: str | None, option: str = "--recorded-at") -> datetime | None:
    """An ISO 8601 instant, if given (see `instant`)."""
    return None if text is None else instant(option, text)


def instant(option: str, text: str) -> datetime:
    """An ISO 8601 instant; a bare date or a naive time is taken as UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:  # a well-formed day the calendar does not have says so
            parse_date(text.strip()[:10])
        except NotInCalendar as error:
            raise UsageError(f"{option}: {error}") from None
        except FieldError:
            pass
        raise UsageError(
            f"{option}: not an ISO 8601 instant: {text!r} (e.g. 2026-04-01T09:30:00Z)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr; yields `update(done, total)`.

    Drawn only on a terminal (piped or redirected, stderr gets no bar lines), and
    only from the first update: a command refused before its work starts prints
    its error alone, not an empty "0/?" bar above it.
    """
    if not output.errors.is_terminal:
        yield lambda done, total: None
        return
    with ExitStack() as stack:
        shown: list[tuple[Progress, TaskID]] = []

        def update(done: int, total: int) -> None:
            if not shown:
                progress = stack.enter_context(
                    Progress(*_PROGRESS_COLUMNS, console=output.errors, transient=False)
                )
                shown.append((progress, progress.add_task(description, total=None)))
            progress, task = shown[0]
            progress.update(task, total=total, completed=done)

        yield update


_PROGRESS_COLUMNS = (
    TextColumn("[bold]{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    TaskProgressColumn(),
    TimeElapsedColumn(),
    TimeRemainingColumn(),
)


def until_signalled(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run `main(stop)`; the first SIGINT or SIGTERM sets `stop` (graceful), and
    hands the signals back to their defaults so a second one stops at once."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)

        def graceful() -> None:
            stop.set()
            for sig in signals:
                loop.remove_signal_handler(sig)

        for sig in signals:
            loop.add_signal_handler(sig, graceful)
        try:
            return await main(stop)
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)

    return asyncio.run(runner())


def decimal_option(name: str, text: str) -> Decimal:
    """A command-line decimal, read exactly in plain notation (typer would read a
    float), refused with the option's name: the same rule as in usage files."""
    try:
        return parse_decimal(text)
    except FieldError as error:
        raise UsageError(f"{name}: {error}") from None


def optional_decimal(name: str, text: str | None) -> Decimal | None:
    return None if text is None else decimal_option(name, text)


def date_option(name: str, text: str) -> date:
    try:
        return parse_date(text)
    except FieldError as error:
        raise UsageError(f"{name}: {error}") from None


UnbilledFlag = Annotated[
    bool, typer.Option("--unbilled", help="Only records not billed yet.", show_default=False)
]

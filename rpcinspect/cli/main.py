"""``rpcinspect`` command line: parses options, runs the engine, renders. No protocol logic here.

Exit codes: 0 success; 2 bad usage or options; 3 an input could not be read completely (not a
capture, unsupported link type, truncated or corrupt): everything decoded before the damage is
still written; 70 internal error (a bug, reported in one line); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup

from rpcinspect import __version__
from rpcinspect.errors import RpcInspectError

__all__ = ["app", "main"]

EXIT_OK, EXIT_USAGE, EXIT_INPUT, EXIT_INTERNAL = 0, 2, 3, 70


class _NoFlagMetavar:
    """Typer shows ``<bool>`` as the value of the built-in -h/--help flag, which takes none."""

    def get_help_option(self, ctx: Any) -> Any:
        opt = super().get_help_option(ctx)  # type: ignore[misc]
        if opt is not None:
            opt.metavar = ""
        return opt


class _Group(_NoFlagMetavar, TyperGroup):
    pass


class _Command(_NoFlagMetavar, TyperCommand):
    """An argument with a metavar shows just it (``FILE...``): not ``{FILE...}...`` in the usage
    line, nor its Python type (``<list[Path]>``) in the help."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for p in self.params:
            if isinstance(p, TyperArgument) and p.metavar:
                p.display_type_rich = _no_type  # type: ignore[method-assign]

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            pieces += [p.metavar] if isinstance(p, TyperArgument) and p.metavar else p.get_usage_pieces(ctx)
        return pieces


def _no_type(ctx: Any) -> None:
    return None


app = typer.Typer(
    name="rpcinspect",
    cls=_Group,
    help="Analyze Microsoft RPC (DCE/RPC, MS-RPCE) traffic: calls, interfaces, operations, auth, damage.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(StrEnum):
    """Output formats of ``analyze``."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rpcinspect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, metavar="", help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """rpcinspect: see what happens over MS-RPC. Run 'rpcinspect COMMAND --help' for a command's options."""


# Option help stays short (one idea, no long words) so that it is complete at 80 columns; the
# details are in the command's docstring and epilog, printed in full width above and below.
_ANALYZE_EPILOG = (
    "**Environment**: `RPCINSPECT_PASSWORD` and `RPCINSPECT_NT_HASH` add a secret like "
    "--password and --nt-hash; `RPCINSPECT_KEYTAB` adds a keytab like --keytab; "
    "`RPCINSPECT_CACHE` is the directory of the interface catalog cache "
    "(default `$XDG_CACHE_HOME/rpcinspect` or `~/.cache/rpcinspect`).\n\n"
    "**Exit codes**: 0 ok; 2 usage; 3 an input could not be read completely (what was decoded "
    "before the damage is still written); 70 internal error; 130 interrupted."
)


@app.command(cls=_Command, epilog=_ANALYZE_EPILOG)
def analyze(
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE...",
            help="pcap or pcapng files (also gzip-compressed), read in order.",
            show_default=False,
        ),
    ],
    fmt: Annotated[
        Format,
        typer.Option("--format", "-f", metavar="FORMAT", help="table, json, jsonl or csv (see above)."),
    ] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write records here, not to standard output.",
            dir_okay=False,
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", metavar="", help="No summary or progress on the terminal.")
    ] = False,
    top: Annotated[int, typer.Option(metavar="N", help="Rows per summary table.", min=1)] = 25,
    no_prefilter: Annotated[
        bool,
        typer.Option(
            "--no-prefilter", metavar="", help="Read every packet in Python (no C prefilter; same records)."
        ),
    ] = False,
    # --prefilter (the default) is still accepted, unlisted: a --prefilter/--no-prefilter pair would
    # take a help column of its own and squeeze every option's help at 80 columns
    _prefilter: Annotated[bool, typer.Option("--prefilter", hidden=True)] = False,
    decode_as: Annotated[
        list[str] | None,
        typer.Option(
            "--decode-as",
            metavar="RULE",
            help="Name calls whose bind is missing: HOST:PORT=UUID[:VER] or PIPE=UUID[:VER] (see above). "
            "Repeatable.",
        ),
    ] = None,
    password: Annotated[
        list[str] | None,
        typer.Option(
            "--password",
            metavar="SECRET",
            help="Decrypt NTLM-sealed stubs: PASSWORD or PRINCIPAL%PASSWORD. Repeatable. Also "
            "RPCINSPECT_PASSWORD.",
        ),
    ] = None,
    nt_hash: Annotated[
        list[str] | None,
        typer.Option(
            "--nt-hash",
            metavar="SECRET",
            help="Like --password, with an NT hash (32 hex digits): HASH or PRINCIPAL%HASH. Repeatable. "
            "Also RPCINSPECT_NT_HASH.",
        ),
    ] = None,
    secrets_file: Annotated[
        Path | None,
        typer.Option(
            "--secrets-file",
            metavar="FILE",
            help="Secrets, one per line: password:SECRET, nt_hash:SECRET or keytab:PATH.",
            dir_okay=False,
        ),
    ] = None,
    keytab: Annotated[
        list[Path] | None,
        typer.Option(
            "--keytab",
            metavar="FILE",
            help="Decrypt Kerberos-sealed stubs with this MIT keytab's keys. Repeatable. Also "
            "RPCINSPECT_KEYTAB.",
            dir_okay=False,
        ),
    ] = None,
    jobs: Annotated[
        str,
        typer.Option("--jobs", "-j", metavar="N", help="Worker processes: a number, or auto (see above)."),
    ] = "auto",
) -> None:
    """Decode capture files into RPC call and bind records (requests paired with responses).

    **Formats** (--format): `table` (the default) prints a summary for people; `jsonl` writes one
    record per line (calls, binds, endpoints, anomalies, then a summary); `json` one document;
    `csv` call records only. Machine formats go to standard output or --output, and the summary
    then goes to the terminal (stderr) unless --quiet.

    **--decode-as RULE** names calls whose bind is not in the capture: `HOST:PORT=UUID[:VER]` (a
    server port; HOST may be `*`) or `PIPE=UUID[:VER]` (a named pipe), where UUID may be a catalog
    name such as `samr`. Rules win over endpoint-mapper learning and well-known pipes.

    **--jobs N** splits the work by client/server address pair across N processes, each reading
    the whole file; records come out in the same order as from one process. `auto` (the default)
    uses the cores (at most 8) for inputs of 64 MiB or more, else one process. Limits then apply
    per process, and an endpoint-mapper answer names missing-bind calls of its own process only.

    **Secrets** decrypt sealed stubs and are never written out. --password and --nt-hash take
    `PASSWORD` or `PRINCIPAL%PASSWORD` (PRINCIPAL: `user` or `DOMAIN\\user`), an NT hash likewise;
    --secrets-file reads `password:SECRET`, `nt_hash:SECRET` or `keytab:PATH` lines (keeping secrets out
    of the process list); --keytab reads an MIT keytab (Kerberos).
    """
    from rpcinspect.catalog import load_catalog
    from rpcinspect.dcerpc.resolve import parse_decode_as
    from rpcinspect.engine import analyze as run_analyze
    from rpcinspect.output.console import Stats, render
    from rpcinspect.output.writers import make_writer
    from rpcinspect.parallel import ParallelRun, auto_jobs
    from rpcinspect.records import SummaryRecord

    err = Console(stderr=True)
    catalog = load_catalog()
    rules = decode_as or []
    try:
        parse_decode_as(rules, catalog)
    except RpcInspectError as exc:
        err.print(f"[red]usage error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    from rpcinspect.auth.secrets import load_keytabs, load_secrets

    try:
        secrets = load_secrets(password or [], nt_hash or [], secrets_file) or None
    except (OSError, ValueError) as exc:
        err.print(f"[red]usage error:[/] secrets: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        keytabs = load_keytabs(keytab or [], secrets_file)
    except (OSError, ValueError) as exc:
        err.print(f"[red]usage error:[/] keytab: {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        njobs = auto_jobs(files) if jobs == "auto" else int(jobs)
        if not 1 <= njobs <= 256:
            raise ValueError
    except ValueError:
        err.print(f"[red]usage error:[/] --jobs {jobs!r}: a number from 1 to 256, or auto", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    except OSError:
        njobs = 1  # an unreadable input: one process reports it as usual
    stats = Stats()
    stream: IO[bytes] | None = None
    writer = None
    if fmt is not Format.table:
        try:
            stream = output.open("wb") if output else sys.stdout.buffer
        except OSError as exc:
            err.print(f"[red]error:[/] cannot write {output}: {exc.strerror}")
            raise typer.Exit(EXIT_USAGE) from None
        writer = make_writer(fmt.value, stream)
    show_summary = not quiet and (fmt is Format.table or output is not None or err.is_terminal)
    summary_console = _StdoutConsole() if fmt is Format.table else err
    if fmt is Format.table and output is not None:  # the table itself goes to the file
        try:
            table_file = output.open("w", encoding="utf-8")
        except OSError as exc:
            err.print(f"[red]error:[/] cannot write {output}: {exc.strerror}")
            raise typer.Exit(EXIT_USAGE) from None
        summary_console, show_summary = Console(file=table_file, width=120, no_color=True), True
    progress_cb, progress_done = _progress(err, files, enabled=not quiet and err.is_terminal)
    options = {"prefilter": not no_prefilter, "decode_as": rules, "secrets": secrets, "keytab": keytabs}
    try:
        write = writer.write if writer is not None else None
        if njobs > 1:
            par = ParallelRun(files, njobs, fmt.value if writer is not None else None,
                              want_stats=show_summary, progress=progress_cb, options=options)  # fmt: skip
            par.run(writer.write_raw if writer is not None else lambda _data: None)
            assert par.summary is not None
            if par.stats is not None:
                stats = par.stats
            stats.write(par.summary)
            if write is not None:
                write(par.summary)
        for rec in () if njobs > 1 else run_analyze(files, catalog=catalog, progress=progress_cb, **options):
            if show_summary or isinstance(rec, SummaryRecord):
                stats.write(rec)
            if write is not None:
                write(rec)
    except RpcInspectError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_INPUT) from None
    except BrokenPipeError:
        raise typer.Exit(EXIT_OK) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    except Exception as exc:  # a bug: say so in one line, keep what was written, never a traceback
        err.print(f"[red]internal error:[/] {type(exc).__name__}: {exc} (please report it with the capture)")
        raise typer.Exit(EXIT_INTERNAL) from None
    finally:
        progress_done()
        if writer is not None:
            with contextlib.suppress(BrokenPipeError):
                writer.close()
            if output is not None and stream is not None:
                stream.close()
    if show_summary:
        try:
            render(stats, summary_console, top=top)
        except BrokenPipeError:
            _quiet_closed_stdout()
            raise typer.Exit(EXIT_OK) from None
        if summary_console.file is not sys.stdout and summary_console is not err:
            summary_console.file.close()
    errors = stats.summary.errors if stats.summary else []
    for e in errors:
        err.print(f"[red]error:[/] {e}", highlight=False, soft_wrap=True)
    if errors:
        raise typer.Exit(EXIT_INPUT)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the JSON Lines records (the versioned output contract)."""
    import orjson

    from rpcinspect.output.jsonschema import json_schema

    opts = orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE
    sys.stdout.buffer.write(orjson.dumps(json_schema(), option=opts))


def _progress(console: Console, files: list[Path], *, enabled: bool):  # type: ignore[no-untyped-def]
    """A rich progress bar over all input bytes, shown only on a terminal and for large inputs."""
    total = 0
    for f in files:
        with contextlib.suppress(OSError):
            total += f.stat().st_size
    if not enabled or total < (32 << 20):
        return None, lambda: None
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    prog = Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        console=console, transient=True,
    )  # fmt: skip
    task = prog.add_task("analyzing", total=total)
    done_before: dict[str, int] = {}
    prog.start()

    def update(path: str, nbytes: int) -> None:
        done_before[path] = nbytes
        prog.update(task, completed=sum(done_before.values()), description=Path(path).name)

    return update, prog.stop


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except BrokenPipeError:
        _quiet_closed_stdout()
        sys.exit(EXIT_OK)


class _StdoutConsole(Console):
    """The table's console: a reader that goes away (``| head``) ends the run like it does for
    the machine formats (exit 0), not with rich's own ``SystemExit(1)``."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def _quiet_closed_stdout() -> None:
    """The reader went away (``| head``): point stdout at /dev/null so that the interpreter's
    final flush does not fail again and turn a clean exit into status 1."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())

"""The ``batchfetch`` command: parse flags, build FetchOptions, open input and output, and
hand them to the consumer loop (``run.py``); map what goes wrong to exit codes.

A thin twin of the Python API (every flag is a :class:`FetchOptions` keyword with dashes);
it holds no fetching, retry or greenlet logic, only parsing, output and exit codes.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import click
import gevent

from ..config import FetchOptions
from ..errors import BrokerError, OptionError, SinceError, StoreError
from ..redaction import mask_passwords
from ..resume import RESUMABLE_FORMATS, RecordedRows, ResumeError
from ..writers import FORMATS, OUTPUT_FORMATS, writer_for
from .help import (EPILOG, SectionedCommand, cluster_option, general_option, listed, output_option,
                   output_suffixes, print_version, request_option, retrying_option,
                   timing_option, tls_option)
from .curl import FormatChoice, curl_habits
from .input_text import InputTextError
from .flags import PairParam, SecondsParam, SizeParam, UserParam, build_options, reads_stdin
from .lines import INPUT_FORMATS, NumberedItems, open_inputs
from .progress import Progress
from .run import AppendedByTheLibrary, ChangedRowsOnly, InInputOrder, RowsToOutput
from .streams import (EXIT_INTERRUPTED, GuardedText, OutputError, PipeText, check_output_file,
                      format_for, interrupts_as_exceptions, open_rows_output, silence_stdout,
                      stdout_is_a_terminal)

__all__ = ["main"]

#: Rows could not be written (a full disk): sysexits.h's EX_IOERR.
EXIT_IO_ERROR = 74
#: The broker of a distributed run cannot be reached, or went away (sysexits' EX_UNAVAILABLE).
EXIT_BROKER_LOST = 69
#: A closed stdout (``batchfetch urls.txt | head``): what a shell reports for a program
#: killed by SIGPIPE, so ``set -o pipefail`` scripts see what they see from ``cat``.
EXIT_OUTPUT_CLOSED = 141
#: How the help and the usage errors name the formats, from the one registry.
_STREAMING, _AT_THE_END = ([name for name, spec in OUTPUT_FORMATS.items()
                            if spec.streams == streams] for streams in (True, False))
_RESUMABLE_SUFFIXES = [OUTPUT_FORMATS[name].suffixes[0] for name in RESUMABLE_FORMATS]

@click.command(cls=SectionedCommand, epilog=EPILOG,
               context_settings={"auto_envvar_prefix": "BATCHFETCH",
                                 "help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@timing_option("-c", "--concurrency", "--parallel-max", type=int, metavar="N", default_of="concurrency",
               help="Requests in flight at once, across all hosts.")
@timing_option("--per-host", type=int, metavar="N", help="Requests in flight at once per host.")
@timing_option("--rate", type=float, metavar="PER_SECOND",
               help="Attempts started per second across the run, retries included.")
@timing_option("-t", "--timeout", type=SecondsParam(), default_of="timeout",
               help="Seconds to connect and between bytes read; 'none' waits forever.")
@timing_option("--connect-timeout", type=float, metavar="SECONDS",
               help="Seconds to connect (overrides --timeout for connecting).")
@timing_option("--deadline", "-m", "--max-time", type=SecondsParam(), default_of="deadline",
               help="Wall-clock seconds one attempt may take, body included; 'none': no limit.")
@timing_option("--max-pending", type=int, metavar="N", show_default="max(256, 4 x concurrency)",
               help="Input items read ahead of the rows written.")
@timing_option("--workers", type=int, metavar="N", default_of="workers",
               help="Processes that may share the batch: this one, and up to N-1 started "
                    "while it is CPU-bound; concurrency, --per-host, --rate and --max-pending "
                    "are divided between them.")
@timing_option("--adaptive", is_flag=True, default=None,
               help="Find each host's requests in flight from its latency (TCP Vegas).")
@timing_option("--polite", is_flag=True, default=None,
               help="A preset for sites that are not yours: --robots --adaptive, and --per-host 4 "
                    "unless given.")
@timing_option("--robots", is_flag=True, default=None,
               help="Fetch each origin's robots.txt first; skip what it disallows (error 'robots') "
                    "and space starts by its Crawl-delay.")
@timing_option("--fast-path/--no-fast-path", "fast_path", default=None,
               help="Send what can go out identically on the native transport (default; the "
                    "same bytes as requests, less CPU); --no-fast-path sends every request "
                    "through requests' full Session path.")
@retrying_option("-r", "--retries", "--retry", type=int, metavar="N", default_of="retries",
                 help="Extra attempts after the first for retryable failures.")
@retrying_option("--backoff", type=float, metavar="SECONDS", default_of="backoff",
                 help="Base of the exponential backoff between attempts (with jitter).")
@retrying_option("--retry-on", metavar="STATUSES", default_of="retry_on",
                 help="Statuses that are retried, e.g. 429,500-504; 'none' retries none.")
@retrying_option("--max-retry-wait", type=float, metavar="SECONDS", default_of="max_retry_wait",
                 help="Longest Retry-After honoured, the cap of the backoff, and the most a row "
                      "waits in all for its throttled retries.")
@retrying_option("--throttled-retries", type=int, metavar="N", default_of="throttled_retries",
                 help="Extra attempts after 429 answers, not counted in --retries: the run slows "
                      "down for the host instead.")
@retrying_option("--retry-non-idempotent", is_flag=True, default=None,
                 help="Also retry POST and PATCH after timeouts, resets and retryable statuses.")
@request_option("-X", "--method", metavar="METHOD", default_of="method",
                help="Method for items that name none (POST with -d, -F or --json).")
@request_option("-H", "--header", "headers", multiple=True,
                type=PairParam(":", "'NAME: VALUE'", "\n"),
                help="A header for every request; repeatable (one per line in the variable).")
@request_option("-I", "--head", is_flag=True, default=None, help="Send HEAD requests.")
@request_option("-d", "--data", multiple=True, metavar="BODY",
                help="Form body for every request, as curl's: repeats join with '&'; @FILE "
                     "and @- (stdin) are read without CR and LF. Implies POST.")
@request_option("--data-binary", multiple=True, metavar="BODY",
                help="As -d, but @FILE's bytes go as they are.")
@request_option("--data-urlencode", multiple=True, metavar="[NAME]=TEXT",
                help="As -d, TEXT (or NAME@FILE's bytes) percent-encoded, as curl does.")
@request_option("-F", "--form", "files", multiple=True, metavar="NAME=[@]VALUE",
                help="A multipart part for every request, as curl's -F; repeatable.")
@request_option("--json", metavar="BODY",
                help="JSON body for every request; sets Content-Type and Accept to "
                     "application/json. Implies POST, like curl.")
@request_option("-u", "--user", "auth", type=UserParam(),
                help="Basic auth credentials.")
@request_option("-A", "--user-agent", metavar="TEXT", default_of="user_agent",
                help="User-Agent header unless -H sets one.")
@request_option("-b", "--cookie", "cookies", multiple=True, type=PairParam("=", "NAME=VALUE"),
                help="A cookie for every request; repeatable.")
@request_option("--param", "params", multiple=True, type=PairParam("=", "NAME=VALUE"),
                help="A query parameter for every request; repeatable.")
@request_option("-L", "--location/--no-redirects", "allow_redirects", default=None,
                help="Follow redirects (the default; -L as in curl) or return 3xx responses.")
@request_option("--max-redirects", type=int, metavar="N", default_of="max_redirects",
                help="Redirects followed before the row fails with too_many_redirects.")
@request_option("--hosts", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
                help="Settings by host pattern (rate, retries, headers, auth, proxy, ...) "
                     "from a TOML file.")
@request_option("--ok-status", metavar="STATUSES", default_of="ok_status",
                help="Statuses that make a row ok, e.g. 200-299,404.")
@request_option("--max-bytes", type=SizeParam(), default_of="max_bytes",
                help="Largest body (512K, 10M, 1G); larger: too_large. auto: 10M when --body "
                     "keeps bodies, no cap otherwise; none: no cap.")
@tls_option("--cacert", type=click.Path(exists=True), metavar="FILE",
            help="CA bundle (or directory) to verify TLS certificates with.")
@tls_option("-k", "--insecure", is_flag=True, default=None,
            help="Do not verify TLS certificates (and do not warn about it).")
@tls_option("--cert", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
            help="Client certificate (PEM), with its key unless --key is given.")
@tls_option("--key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
            help="Private key of --cert.")
@tls_option("-x", "--proxy", "proxies", metavar="URL",
            help="Proxy for http and https URLs (default: the *_proxy variables).")
@output_option("--input-format", type=click.Choice(INPUT_FORMATS), default="auto",
               show_default=True,
               help="Files hold URLs (text) or request specs (jsonl); auto: each file jsonl "
                    "for a .jsonl name or a first line starting with '{'.")
@output_option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), metavar="FILE",
               help=f"Write rows to FILE; its extension ({' '.join(output_suffixes())}) sets "
                    f"the format (none: jsonl; any other needs -f).")
@output_option("-f", "--format", type=FormatChoice(FORMATS),
               help=f"Rows as {listed(FORMATS)}. Default: by -o extension, else a table on a "
                    f"terminal and jsonl on a pipe. {listed(_STREAMING, 'and')} stream each row "
                    f"as it completes (flat memory); {listed(_AT_THE_END, 'and')} come at the "
                    f"end, in input order.")
@output_option("--body", "keep_body", is_flag=True, default=None,
               help="Keep each response body, in body and body_encoding (utf-8 or base64) "
                    "columns; each capped at 10M unless --max-bytes says otherwise.")
@output_option("--hash", "hash_body", is_flag=True, default=None,
               help="Each decoded body's SHA-256 in the sha256 column (on with -o runs.db "
                    "and --since).")
@output_option("-i", "--response-headers", is_flag=True, default=None,
               help="Add each response's headers to its row: an object in jsonl (a list for "
                    "a repeated header), a JSON text cell in csv.")
@output_option("--header-column", "header_columns", multiple=True, metavar="NAME",
               help="A column of that response header on every row (ETag: etag); "
                    "repeatable.")
@output_option("--save", "save_dir", type=click.Path(file_okay=False), metavar="DIR",
               help="Stream each body to a file in DIR (created if missing), named in the "
                    "path column; a body cut short leaves no file.")
@output_option("--since", type=click.Path(dir_okay=False), metavar="PREV",
               help="Compare with an earlier run's -o file (jsonl, csv, or a run store): "
                    "send its ETag and Last-Modified, and say in the change column what is "
                    "new, same, changed, moved, gone or failed (README: Re-running a batch).")
@output_option("--changed-only", is_flag=True, default=None,
               help="With --since: leave same rows out of the output (a run store keeps "
                    "every row), and --save only bodies that are new or changed.")
@output_option("--resume", is_flag=True, allow_from_autoenv=False,
               help=f"Keep the rows already in -o FILE ({listed(RESUMABLE_FORMATS)}; failed ones "
                    "too), fetch the inputs without one and append their rows (README: Long "
                    "runs).")
@output_option("--retry-failed", is_flag=True, allow_from_autoenv=False,
               help="With --resume: fetch the inputs whose rows failed again, replacing those "
                    "rows.")
@cluster_option("--broker", metavar="URL",
                help="Fetch on the batchfetch-worker processes of this Redis broker; -c and "
                     "--per-host then hold per worker process.")
@cluster_option("--chunk-size", type=int, metavar="N", default_of="chunk_size",
                help="Inputs per chunk.")
@cluster_option("--lease", type=float, metavar="SECONDS", default_of="lease",
                help="A dead worker's chunks go to others this long after its last renewal.")
@cluster_option("--chunk-time-limit", type=float, metavar="SECONDS",
                default_of="chunk_time_limit", help="Most one chunk may take.")
@general_option("--progress/--no-progress", default=None,
                help="A progress bar on stderr (done/total, rate, ok, failed, retries, ETA). "
                     "Default: on when stderr is a terminal, unless -q or rows stream to it.")
@general_option("-q", "--quiet", "-s", "--silent", is_flag=True, help="No summary on stderr.")
@general_option("-v", "--verbose", count=True,
                help="Log retries and cool-downs to stderr; -vv: debug.")
@general_option("--demo", is_flag=True, allow_from_autoenv=False,
                help="Fetch a realistic batch from a bundled loopback server (offline) and "
                     "check every row.")
@general_option("--version", is_flag=True, expose_value=False, is_eager=True,
                callback=print_version, allow_from_autoenv=False,
                help="Show versions and exit.")
@curl_habits
@click.pass_context
def main(ctx: click.Context, inputs: tuple[str, ...], quiet: bool, verbose: int, demo: bool,
         **flags: Any) -> None:
    """Fetch every URL in the INPUTs concurrently and write one row per input.

    An INPUT with :// is a URL; - is standard input (the default); any other
    is a file of one URL per line, or of JSON Lines request specs:
    {"id": 7, "url": ..., "method": "POST", "json": {...}} with optional
    headers, params, data and cookies. Blank lines and lines starting with #
    are skipped; a bad line becomes an error row naming its line and file,
    and the run goes on. Rows are numbered in one sequence across INPUTs.

    Each option is the batchfetch.fetch_all() keyword of the same name (-H:
    headers, -b: cookies, --param: params, -u: auth, -k and --cacert:
    verify, --proxy: proxies, --body: keep_body, --save: save_dir), and
    BATCHFETCH_<KEYWORD> sets its default (BATCHFETCH_CONCURRENCY=50; other
    flags: BATCHFETCH_<LONG_NAME>, as BATCHFETCH_FORMAT=csv). curl's flags
    work where batchfetch has their meaning (-L, -s, -m, -x, -I, --retry).
    Rows go to stdout or -o; logs and the summary (counts, latency
    percentiles, retries) go to stderr.
    """
    from . import demo as demo_module  # here: a real run needs no test server loaded

    output, input_format, fmt = flags.pop("output"), flags.pop("input_format"), flags.pop("format")
    resume, retry_failed, progress = (flags.pop(name) for name in ("resume", "retry_failed",
                                                                    "progress"))
    if demo and inputs:
        raise click.UsageError("--demo fetches its own list: give no INPUT")
    sources = [] if demo else open_inputs(ctx, inputs)
    stdin = next((source.stream for source in sources if source.name == "-"), None)
    if stdin is not None and reads_stdin(flags):
        raise click.UsageError("-d @- reads the body from standard input, which is an input "
                               "too: give the URLs as arguments or in a file")
    options = build_options(ctx, flags, demo_module.DEMO_OPTIONS if demo else {})
    fmt = fmt or format_for(output, demo)
    if fmt == "sqlite" and output in (None, "-"):
        raise click.UsageError("-f sqlite writes a run store: give it a file, -o runs.db")
    if fmt == "sqlite" and not options.hash_body:  # a store keeps what a later run compares
        options = options.replace(hash_body=True)
    _check_since(options, output, fmt, resume)
    recorded = _recorded_rows(output, fmt, options, resume, retry_failed, demo)
    if output not in (None, "-"):
        check_output_file(output, [source.path or source.stream for source in sources
                                   if not source.is_url])
    if sys.stderr is None:  # started with 2>&-: the summary and logs go nowhere
        sys.stderr = open(os.devnull, "w")
    say: Callable[[str], None] = (lambda text: None) if quiet else (
        lambda text: click.echo(text, err=True))
    if progress is None:  # not over rows streaming to the same terminal
        progress = sys.stderr.isatty() and not quiet and not (
            output in (None, "-") and OUTPUT_FORMATS[fmt].streams and stdout_is_a_terminal())
    bar = Progress(progress, sys.stderr)
    target: Any = None
    reader_watch = None
    try:
        if fmt == "sqlite" and recorded is None:  # a run store: through its path
            from ..store import SqliteWriter  # sqlite3 only for a run that writes one

            writer = SqliteWriter(output, options.keep_body, options=options.to_shown_dict(),
                                  **options.record_shape)
        elif recorded is None:
            target = open_rows_output(output)
            writer = writer_for(fmt, target, options.keep_body, **options.record_shape)
            # A format written at the end is written in input order: the table writer
            # orders its rows itself, the library's json writer streams them unordered.
            if not OUTPUT_FORMATS[fmt].streams and not writer.orders_rows:
                writer = InInputOrder(writer)
        else:
            writer = AppendedByTheLibrary()
        if options.changed_only and fmt != "sqlite":  # a run store keeps every row
            writer = ChangedRowsOnly(writer)
        run = RowsToOutput(options, writer, say, bar, recorded)
        run.resumable = (OUTPUT_FORMATS[fmt].resumable or fmt == "sqlite") and \
            output not in (None, "-") and not options.changed_only
        if isinstance(target, PipeText):
            reader_watch = target.watch_reader(gevent.getcurrent())
        with _logging_to_stderr(verbose, bar.log_handler(), quiet), _warnings_for(options), \
                interrupts_as_exceptions(target):
            if demo:
                code = demo_module.run_demo(run, say)
            else:
                if stdin is not None and stdin.isatty():
                    say("batchfetch: reading URLs from the terminal; end with Ctrl-D")
                code = run(NumberedItems(sources, input_format, recorded=recorded))
            if target is not None:
                target.close()
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as cat does
        silence_stdout()
        code = EXIT_OUTPUT_CLOSED
    except KeyboardInterrupt:  # a Ctrl-C outside the fetch loop (a second one exits at once)
        code = EXIT_INTERRUPTED
    except OutputError as exc:  # a full disk: one line, and the rows written stay as they are
        if isinstance(target, GuardedText):
            target.discard()
        silence_stdout()  # the interpreter's last flush of stdout must not fail again
        click.echo(f"batchfetch: {exc}", err=True)
        code = EXIT_IO_ERROR
    except BrokerError as exc:  # the rows that came before stay written
        click.echo(f"batchfetch: {exc}", err=True)
        code = EXIT_BROKER_LOST
    except (ResumeError, InputTextError, OptionError, StoreError, SinceError) as exc:
        # OptionError: --save's probe on a --broker run; StoreError: -o runs.db unusable
        if isinstance(target, GuardedText):
            target.discard()  # an -o FILE not written to yet stays as it was
        raise _InputRefused(str(exc)) from None
    finally:
        if reader_watch is not None:
            reader_watch.kill()
        bar.close()
    ctx.exit(code)


class _InputRefused(click.ClickException):
    """The input is not text, or the --resume file is another input's: exit 2, like a usage
    error (nothing was fetched, or the rows before the bad line are written)."""

    exit_code = 2


def _check_since(options: FetchOptions, output: str | None, fmt: str, resume: bool) -> None:
    """--since and --changed-only against -o and --resume, before anything is written."""
    if options.changed_only and resume:
        raise click.UsageError("--changed-only does not go with --resume: --resume finds "
                               "what is left by the rows in the file, and --changed-only "
                               "leaves rows out; drop --changed-only to resume")
    since = options.since
    if since is None:
        return
    if since == "-":
        raise click.BadParameter("'-': PREV is a file (an earlier run's -o), not standard "
                                 "input", param_hint="'--since'")
    same = output not in (None, "-") and (
        os.path.abspath(since) == os.path.abspath(output)
        or (os.path.exists(since) and os.path.exists(output)
            and os.path.samefile(since, output)))
    if same and fmt != "sqlite":
        raise click.UsageError(f"--since and -o both name {since}: this run's rows would "
                               "replace the ones it compares with; write them to another "
                               "file, or keep every run in a store (-o runs.db --since "
                               "runs.db)")
    if not same and not os.path.exists(since):
        raise click.BadParameter(f"{since!r}: no such file", param_hint="'--since'")


def _recorded_rows(output: str | None, fmt: str | None, options: FetchOptions, resume: bool,
                   retry_failed: bool, demo: bool) -> RecordedRows | None:
    """With --resume, the rows already in the output file (none when it does not exist
    yet); usage errors in the flags' words."""
    if retry_failed and not resume:
        raise click.UsageError("--retry-failed works with --resume: add --resume")
    if not resume:
        return None
    if demo:
        raise click.UsageError("--resume does not go with --demo: the demo's server is new "
                               "each run")
    if output in (None, "-"):
        raise click.UsageError(f"--resume needs -o FILE (a {listed(_RESUMABLE_SUFFIXES)} "
                               f"file): it reads the rows already there and appends the rest")
    if not OUTPUT_FORMATS[fmt].resumable and fmt != "sqlite":
        uses = [f"-o FILE{suffix}" for suffix in _RESUMABLE_SUFFIXES]
        uses.append(f"-f {'/'.join(RESUMABLE_FORMATS)}")
        raise click.UsageError(f"--resume appends rows to a {listed(RESUMABLE_FORMATS)} file, "
                               f"not {fmt}: use {listed(uses)}")
    if os.path.exists(output) and not os.path.isfile(output):  # in the words of -o
        raise click.BadParameter(f"--resume reads the rows already in {output!r}, which is "
                                 f"not a regular file", param_hint="'-o' / '--output'")
    from ..store import open_recorded

    try:
        return open_recorded(output, fmt, options.keep_body, retry_failed, options=options,
                             **options.record_shape)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {output!r}: {exc.strerror}",
                                 param_hint="'-o' / '--output'") from None
    except (ResumeError, StoreError) as exc:
        raise _InputRefused(str(exc)) from None


class _PasswordMaskingFormatter(logging.Formatter):
    """Log lines with URL passwords masked, urllib3's included (-vv)."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_passwords(super().format(record))


@contextlib.contextmanager
def _logging_to_stderr(verbose: int, handler: logging.Handler,
                       quiet: bool = False) -> Iterator[None]:
    """batchfetch's warnings (no worker takes a --broker run's chunks, a worker's lease
    lapsed), unless -q; -v: its retries and cool-downs at INFO; -vv: DEBUG, with urllib3's
    connections; through ``handler`` (to stderr, above the progress bar)."""
    handler.setFormatter(_PasswordMaskingFormatter("%(name)s: %(message)s"))
    names = ("batchfetch", "urllib3")[:max(verbose, 0 if quiet else 1)]
    loggers = [(logging.getLogger(name), logging.getLogger(name).level) for name in names]
    for logger, _ in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose
                        else logging.WARNING)
    try:
        yield
    finally:
        for logger, level in loggers:
            logger.removeHandler(handler)
            logger.setLevel(level)


@contextlib.contextmanager
def _warnings_for(options: FetchOptions) -> Iterator[None]:
    """With -k the user asked for unverified TLS: urllib3 need not warn on every request."""
    with warnings.catch_warnings():
        if options.verify is False:
            from urllib3.exceptions import InsecureRequestWarning

            warnings.simplefilter("ignore", InsecureRequestWarning)
        yield

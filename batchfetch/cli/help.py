"""How ``batchfetch --help`` reads: options under headed sections, defaults read from
FetchOptions (one source), the examples epilog, and ``--version``.
"""
from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterable
from typing import Any

import click

from .._checks import status_ranges
from .._version import __version__
from ..config import FetchOptions
from ..writers import OUTPUT_FORMATS

__all__ = ["EPILOG", "SectionedCommand", "print_version", "variable_of", "timing_option",
           "retrying_option", "request_option", "tls_option", "output_option", "cluster_option",
           "general_option", "listed", "output_suffixes"]

SECTIONS = ("Concurrency and timing", "Retries", "Request", "TLS and proxies", "Input and output",
            "More than one machine", "General")
_DEFAULTS = {field.name: field.default for field in dataclasses.fields(FetchOptions)}


def _shown_default(name: str) -> str:
    """A FetchOptions default as the help shows it, read from the dataclass (one source)."""
    value = _DEFAULTS[name]
    if isinstance(value, frozenset):
        return ",".join(status_ranges(value))
    if isinstance(value, tuple):
        return f"{value[0]:g} connect, {value[1]:g} read"
    return f"{value:g}" if isinstance(value, float) else str(value)


class _SectionOption(click.Option):
    def __init__(self, *args: Any, section: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.section = section

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        try:
            return super().process_value(ctx, value)
        except click.BadParameter as exc:
            variable = variable_of(ctx, self)
            if variable:  # the value came from the environment: name what to fix there
                exc.param_hint = f"the variable {variable}"
            raise

    def get_help_extra(self, ctx: click.Context) -> Any:  # click >= 8.2
        extra = super().get_help_extra(ctx)
        if isinstance(self.show_default, str):  # click would wrap it in parentheses
            extra["default"] = self.show_default
        return extra


def variable_of(ctx: click.Context, param: click.Parameter) -> str | None:
    """The BATCHFETCH_* variable ``param``'s value came from, or None if it did not."""
    if param.name is None or \
            ctx.get_parameter_source(param.name) is not click.core.ParameterSource.ENVIRONMENT:
        return None
    if isinstance(param.envvar, str):
        return param.envvar
    return f"{ctx.auto_envvar_prefix}_{param.name.upper()}"  # click's own naming


class SectionedCommand(click.Command):
    """Lists options under headed sections (click 8 has none built in)."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        records: dict[str, list[tuple[str, str]]] = {title: [] for title in SECTIONS}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record:
                records[getattr(param, "section", "General")].append(record)
        for title in SECTIONS:
            with formatter.section(title):
                formatter.write_dl(records[title])


def _section(title: str) -> Callable[..., Callable]:
    def option(*decls: str, default_of: str | None = None, **attrs: Any) -> Callable:
        if default_of:
            attrs["show_default"] = _shown_default(default_of)
        return click.option(*decls, cls=_SectionOption, section=title, **attrs)
    return option


#: One option decorator per help section: @timing_option("--rate", ...).
(timing_option, retrying_option, request_option, tls_option, output_option, cluster_option,
 general_option) = map(_section, SECTIONS)


def listed(words: Iterable[str], conjunction: str = "or") -> str:
    """Words as a sentence lists them.

    Example::

        >>> listed(["table", "csv", "json"]), listed(["csv", "jsonl"], "and")
        ('table, csv or json', 'csv and jsonl')
    """
    *first, last = words
    return f"{', '.join(first)} {conjunction} {last}" if first else last


def output_suffixes(with_names: bool = False) -> list[str]:
    """The extensions ``-o`` knows, format by format, those that name their format first;
    ``with_names`` adds the format's name to one that does not (``.txt (table)``).

    Example::

        >>> output_suffixes()
        ['.csv', '.jsonl', '.ndjson', '.json', '.txt', '.db', '.sqlite', '.sqlite3']
        >>> output_suffixes(with_names=True)[4:]
        ['.txt (table)', '.db (sqlite)', '.sqlite', '.sqlite3']
    """
    def unnamed(spec: Any) -> bool:
        return spec.suffixes[0] != "." + spec.name

    specs = sorted(OUTPUT_FORMATS.values(), key=unnamed)
    return [suffix + (f" ({spec.name})" if with_names and unnamed(spec)
                      and spec.name not in suffix else "")
            for spec in specs for suffix in spec.suffixes]


def print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:  # with the versions a bug report needs
        from importlib.metadata import version

        stack = ", ".join(f"{name} {version(name)}" for name in
                          ("gevent", "grequests", "requests", "urllib3"))
        click.echo(f"batchfetch {__version__} ({stack}, Python {sys.version.split()[0]})")
        ctx.exit()


EPILOG = """\b
Examples:
  batchfetch --demo                # offline, against a loopback server
  batchfetch urls.txt              # a table on a terminal, jsonl on a pipe
  batchfetch -c 50 -t 10 -r 2 -o out.csv urls.txt
  cat urls.txt | batchfetch -q -f jsonl > rows.jsonl
  batchfetch --ok-status 200-299,404 -q urls.txt; echo $?
  batchfetch -H 'Authorization: Bearer TOKEN' --body api_calls.jsonl
  batchfetch --json '{"op": "ping"}' -u me:secret --body urls.txt
  batchfetch --resume -o rows.jsonl urls.txt  # after Ctrl-C: fetch the rest

\b
Exit status: 0 every row ok, 1 some row failed, 2 usage error (or
input that is not text, or --resume with another input's file), 69 the
--broker cannot be reached, 74 rows could not be written (disk full), 130
interrupted (Ctrl-C, SIGTERM), 141 output closed early (piped into head).
"""

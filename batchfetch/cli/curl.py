"""curl's flags, for curl users' fingers. The ones batchfetch has a twin of are aliases on
that option (``-m`` on ``--deadline``, ``-x`` on ``--proxy``, ...); here are the rest:
those that ask for what batchfetch does anyway (accepted, changing nothing), those it has
no twin of (a usage error that names batchfetch's way), and the hint for a cluster such as
``-fsSL``, where ``-f`` is ``--format`` here.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import click

__all__ = ["FormatChoice", "curl_habits"]

#: curl flags asking for what batchfetch does anyway: accepted, and they change nothing.
ALREADY_DONE = {
    ("--compressed",): "gzip, deflate, br and zstd are asked for and decoded by default",
    ("--fail",): "a row whose status is not in --ok-status (default 100-399) fails, and so "
                 "does the exit status",
    ("-S", "--show-error"): "a failed row always says why, in its error and message columns",
    ("-Z", "--parallel"): "batchfetch always fetches in parallel (-c sets how many at once)",
}

#: curl flags batchfetch has no twin of: (the flag takes a value, what to do instead).
REFUSED = {
    ("-D", "--dump-header"): (True, "-i (--response-headers) adds each response's headers "
                                    "to its row, --header-column NAME one header's column"),
    ("-O", "--remote-name"): (False, "give --save DIR: each body goes to a file in DIR named "
                                     "from its URL, and the path column names it"),
    ("--limit-rate",): (True, "curl's --limit-rate caps bandwidth, which batchfetch does not; "
                              "--rate caps requests started per second"),
    ("-K", "--config"): (True, "batchfetch reads no curl config file: set defaults in "
                               "BATCHFETCH_* variables, or give request specs in a JSON Lines "
                               "INPUT"),
}


def curl_habits(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the flags of :data:`ALREADY_DONE` and :data:`REFUSED` to ``command``, hidden
    from --help (the README's curl table lists them)."""
    for decls in ALREADY_DONE:
        command = click.option(*decls, is_flag=True, hidden=True, expose_value=False,
                               allow_from_autoenv=False)(command)
    for decls, (takes_value, instead) in REFUSED.items():
        command = click.option(*decls, is_flag=not takes_value, hidden=True,
                               expose_value=False, allow_from_autoenv=False,
                               callback=_refuse(decls, instead))(command)
    return command


def _refuse(decls: tuple[str, ...], instead: str) -> Callable[..., None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value not in (None, False):
            raise click.UsageError(f"{'/'.join(decls)} is curl's, and batchfetch has no such "
                                   f"option: {instead}", ctx)
    return callback


#: A value of -f that is rather a cluster of curl's one-letter flags (-fsSL): curl's
#: common flags that take no value.
_CLUSTER = re.compile(r"[sSLkvifIO#]{1,6}")


class FormatChoice(click.Choice):
    """-f's formats; a cluster such as ``-fsSL`` gets a hint instead of "'sSL' is not one of"."""

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter:
            if not isinstance(value, str) or not _CLUSTER.fullmatch(value):
                raise
            self.fail(f"-f{value} looks like curl's flags, but -f is --format here "
                      f"({', '.join(self.choices)}); batchfetch follows redirects (-L) and "
                      f"fails rows on HTTP errors (--fail) by default, and -s is -q",
                      param, ctx)

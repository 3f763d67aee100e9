"""``python -m batchfetch.testing``: run the loopback test server until Ctrl-C, to try
batchfetch (and the README's examples) without a network.

Example, in one shell and then another::

    python -m batchfetch.testing --port 8000
    batchfetch http://127.0.0.1:8000/ok http://127.0.0.1:8000/status/503
"""
from __future__ import annotations

import click
import gevent

from .server import ROUTES, LoopbackServer


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on; 0 picks a free one.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (keep it a loopback one: the routes hang, reset "
                   "and flood on purpose).")
def main(port: int, host: str) -> None:
    """Serve batchfetch's test routes on HOST:PORT until Ctrl-C."""
    server = LoopbackServer(host, port)
    try:
        server.start()
    except OSError as exc:
        raise click.UsageError(f"cannot listen on {host}:{port}: {exc.strerror}"
                               + ("; pick another --port, or 0 for a free one"
                                  if port else "")) from None
    width = max(map(len, ROUTES))
    lines = [f"batchfetch test server at {server.base_url} (Ctrl-C stops it)", "", "routes:"]
    lines += [f"  {route:<{width}}  {meaning}" for route, meaning in ROUTES.items()]
    lines += ["", f"try:  batchfetch {server.url('/ok')} {server.url('/status/503')} "
                  f"{server.url('/delay/1')}"]
    click.echo("\n".join(lines))
    try:
        while True:
            gevent.sleep(3600)
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main(prog_name="python -m batchfetch.testing")

"""``batchfetch-worker``: a worker of distributed runs, a Celery worker on the gevent pool.

Importing batchfetch patched sockets, ssl and time with gevent already (its grequests
arguments); :func:`main` patches the rest (select, threads) before Celery and kombu are
imported. kombu's Redis transport takes ``select.poll`` when it is imported: unpatched,
it blocks the hub, and the worker takes chunks and hangs (measured, ../shared/notes).
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import click

__all__ = ["main"]

#: Seconds: a worker process that exits sooner after its start counts as failing to start.
QUICK_EXIT = 10.0
#: The Celery slots of a worker process (chunks it runs at once). Its requests in flight
#: come from --max-in-flight, shared by its chunks, not from the slots.
SLOTS = 4


def main() -> None:
    """The console script: patch the process fully, then run the command."""
    from gevent import monkey

    with warnings.catch_warnings():  # the union with batchfetch's patch: expected
        warnings.simplefilter("ignore", monkey.MonkeyPatchWarning)
        monkey.patch_all()
    worker(auto_envvar_prefix="BATCHFETCH_WORKER")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--broker", required=True, metavar="URL", envvar="BATCHFETCH_BROKER",
              help="The Redis broker: redis://HOST:6379/0, or rediss:// with a password "
                   "(TLS). Also BATCHFETCH_BROKER.")
@click.option("--max-in-flight", type=click.IntRange(min=1), default=100, show_default=True,
              metavar="N", help="Requests in flight at once in each worker process; a run's "
                                "--concurrency applies per process, within this.")
@click.option("--processes", type=click.IntRange(min=1), default=os.cpu_count() or 1,
              show_default="the number of cores", metavar="N",
              help="Worker processes to start (one per core: a process is one core).")
@click.option("--name", default=f"batchfetch@{socket.gethostname()}", show_default=True,
              help="The worker's name in its log and in rows' messages (processes add -1, "
                   "-2, ...).")
@click.option("--loglevel", "-l", default="warning", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]),
              help="Celery's log level (info logs every chunk).")
@click.version_option(package_name="batchfetch", prog_name="batchfetch-worker")
def worker(broker: str, max_in_flight: int, processes: int, name: str, loglevel: str) -> None:
    """Fetch the chunks of distributed runs (batchfetch --broker URL) from the broker.

    Start it on each machine that fetches; stop it with Ctrl-C or SIGTERM (a chunk it
    holds is sent to another worker once its lease lapses). Options and items of a run
    come through the broker with their credentials: use rediss:// with a password
    beyond one trusted network.
    """
    from .._checks import broker_problem
    from ..engines._broker import shown_broker

    problem = broker_problem(broker)
    if problem:
        raise click.BadParameter(problem, param_hint="--broker")
    from ..engines.distributed import _missing_extra

    missing = _missing_extra()
    if missing:
        raise click.ClickException(missing.replace("the distributed engine", "a worker"))
    if processes > 1:
        sys.exit(_supervise(broker, max_in_flight, processes, name, loglevel))
    click.echo(f"batchfetch-worker {name}: taking chunks from {shown_broker(broker)}, "
               f"{max_in_flight} requests in flight at most", err=True)
    _run_celery(broker, max_in_flight, name, loglevel)


def _run_celery(broker: str, max_in_flight: int, name: str, loglevel: str) -> None:
    from gevent import monkey

    if not (monkey.is_module_patched("select") and monkey.is_module_patched("threading")):
        raise click.ClickException("the process is not patched fully with gevent (select "
                                   "and threads): start the worker with batchfetch-worker")
    import gevent
    from celery import signals

    from ..engines._broker import QUEUE, TASK, make_app, redis_client, shown_broker
    from ..engines._chunk_worker import WorkerProcess

    _wait_for_broker(broker, redis_client, shown_broker(broker))
    app = make_app(broker)
    process = WorkerProcess(broker, max_in_flight, name)
    # A revoke (the driver's Ctrl-C) asks the result backend for each chunk's state; there
    # is none (rows go through Redis lists), and Celery warns once per chunk.
    logging.getLogger("celery.worker.control").addFilter(
        lambda record: "as revoked in backend" not in record.getMessage())
    app.task(name=TASK)(process.run_chunk)
    signals.task_received.connect(
        lambda sender=None, request=None, **_: process.received(request.id), weak=False)
    signals.worker_ready.connect(lambda **_: gevent.spawn(_sweep, app), weak=False)
    app.worker_main(["worker", "-P", "gevent", "-c", str(SLOTS), "-l", loglevel, "-n", name,
                     "-Q", QUEUE, "--without-mingle", "--without-gossip",
                     "--prefetch-multiplier", "2"])


def _wait_for_broker(broker: str, redis_client, shown: str) -> None:
    """Return once the broker answers: a broker not up yet (started after the workers) is
    waited for, saying so once; one that answers wrongly (a database out of range,
    another protocol, a bad password) is one line, not Celery's tracebacks."""
    import gevent
    import redis

    client, said = redis_client(broker, quick=True), False
    while True:
        try:
            client.ping()
            return
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            if isinstance(exc, redis.exceptions.AuthenticationError):
                raise click.ClickException(f"the broker {shown} refused us: {exc}")
            if not said:
                click.echo(f"batchfetch-worker: waiting for the broker {shown}: {exc}",
                           err=True)
                said = True
            gevent.sleep(2.0)
        except Exception as exc:  # noqa: BLE001 - it answered, but not as Redis would
            raise click.ClickException(f"cannot use the broker {shown}: {exc}")


def _sweep(app) -> None:
    """Put back on the queue what a dead worker left unacknowledged: kombu does not under
    the gevent pool (celery/celery#4976). The copies are skipped (their chunks were sent
    again by the driver, or their runs are over); this keeps them from piling up."""
    import gevent

    while True:
        gevent.sleep(60)
        try:
            with app.connection_for_write() as connection:
                connection.default_channel.qos.restore_visible(num=1000, interval=1)
        except Exception:  # noqa: BLE001 - the broker is away: try at the next turn
            pass


def _supervise(broker: str, max_in_flight: int, processes: int, name: str,
               loglevel: str) -> int:
    """Run ``processes`` worker processes; one that exits is started again (a chunk it held
    comes back through its lease). Ctrl-C or SIGTERM stops them all. One that exits within
    :data:`QUICK_EXIT` seconds of its start, three times in a row, stops the lot: it
    cannot run here (its error is above)."""
    import gevent

    base, _, host = name.partition("@")
    # The broker (its password) goes in the environment, never in an argv ps shows.
    environment = dict(os.environ, BATCHFETCH_BROKER=broker)
    stopping = False

    def start(number: int) -> tuple[subprocess.Popen, float]:
        return subprocess.Popen([
            sys.executable, "-m", "batchfetch.cli.worker", "--processes", "1",
            "--max-in-flight", str(max_in_flight), "--loglevel", loglevel,
            "--name", f"{base}-{number}@{host}" if host else f"{base}-{number}"],
            env=environment), time.monotonic()

    children = {number: start(number) for number in range(1, processes + 1)}
    quick_exits = dict.fromkeys(children, 0)

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child, _ in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        gevent.sleep(0.5)
        if stopping:
            for child, _ in children.values():  # one started as the signal came, too
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            codes = [child.wait() for child, _ in children.values()]
            return max(codes, key=abs) if any(codes) else 0
        for number, (child, started) in list(children.items()):
            code = child.poll()
            if code is None or stopping:
                continue
            quick_exits[number] = quick_exits[number] + 1 \
                if time.monotonic() - started < QUICK_EXIT else 0
            if quick_exits[number] >= 3:
                click.echo(f"batchfetch-worker: worker {number} exited {code} three times "
                           "just after starting: stopping", err=True)
                stop(signal.SIGTERM, None)
                break
            click.echo(f"batchfetch-worker: worker {number} exited with {code}; starting it "
                       "again", err=True)
            children[number] = start(number)


if __name__ == "__main__":
    main()

"""A worker process of the process engine: ``python -m batchfetch.engines._process_child``.

It reads frames from stdin (the options, then ``("item", serial, index, item)`` until
stdin closes), fetches them with one :class:`~batchfetch.engines.local.LocalEngine`
(its own hub, pool and session), and writes ``("row", serial, row, exception)`` frames
to stdout; rows carry the parent's input index, the serial tells apart inputs that
repeat an index. Hooks run in the parent. Ctrl-C belongs to the parent, which stops
its workers itself.
"""
# Run as ``python -m``, this module is imported after its package, whose __init__ has
# patched the process with gevent already.
import signal
import sys

from gevent.fileobject import FileObjectPosix

from ._frames import FrameWriter, read_frame
from ._serving import serve_share
from .local import LocalEngine


def serve(stdin, stdout) -> None:
    """Say we have started; fetch what the parent sends until it closes our stdin; report
    every row."""
    frames = FrameWriter(stdout)
    frames.write(("ready",))  # imported: the parent may give us our share now
    options = read_frame(stdin)
    if options is None:
        return
    engine = LocalEngine(options)
    try:
        serve_share(engine, lambda: read_frame(stdin),
                    lambda serial, row, exception: frames.write(
                        ("row", serial, row, _picklable(exception), engine.in_flight)))
    finally:
        engine.close()
    frames.write(("done",))
    frames.flush()


def _picklable(exception: BaseException | None) -> BaseException | None:
    """The exception itself, or a BatchFetchError with its text when it cannot travel."""
    import pickle

    from ..errors import BatchFetchError

    if exception is None:
        return None
    try:
        pickle.loads(pickle.dumps(exception))
        return exception
    except Exception:  # noqa: BLE001 - anything unpicklable is described instead
        return BatchFetchError(f"{type(exception).__name__}: {exception}")


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    stdin = FileObjectPosix(sys.stdin.fileno(), "rb", close=False)
    stdout = FileObjectPosix(sys.stdout.fileno(), "wb", close=False)
    try:
        serve(stdin, stdout)
    except BrokenPipeError:
        pass  # the parent went away: nobody is left to report to


if __name__ == "__main__":
    main()

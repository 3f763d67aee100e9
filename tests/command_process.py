"""The command as a subprocess, for tests of signals, pipes and exit codes: started against
the loopback server in the test's process, and waited for by event, never by a stopwatch."""
import array
import fcntl
import subprocess
import sys
import termios

import gevent


def start(args, child_env, **streams):
    """``python -m batchfetch ARGS``; stdout and stderr piped, stdin empty, unless given."""
    streams.setdefault("stdout", subprocess.PIPE)
    streams.setdefault("stderr", subprocess.PIPE)
    streams.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-m", "batchfetch", *map(str, args)],
                            env=child_env, **streams)


def url_file(tmp_path, urls, name="urls.txt"):
    path = tmp_path / name
    path.write_text("".join(url + "\n" for url in urls))
    return path


def wait_for(condition):
    """Poll until ``condition()``; pytest-timeout is the only limit (any other would be an
    upper bound on the child's speed)."""
    while not condition():
        gevent.sleep(0.02)


def bytes_in_pipe(pipe):
    """How many bytes wait in ``pipe`` (a file descriptor or a file, either end) to be
    read."""
    count = array.array("i", [0])
    fcntl.ioctl(pipe if isinstance(pipe, int) else pipe.fileno(), termios.FIONREAD, count)
    return count[0]

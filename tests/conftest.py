"""Shared fixtures: batchfetch is imported first (it patches the process with gevent)."""
import batchfetch  # noqa: F401  (first: monkey-patches before requests/ssl load)

import os
import pathlib

import gevent
import gevent.event
import gevent.server
import pytest

from batchfetch.testing import LoopbackServer

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """Tests talk to 127.0.0.1 directly, whatever proxies the machine is configured with,
    and a developer's own BATCHFETCH_* defaults do not change what they see."""
    for name in list(os.environ):
        if name.lower() in _PROXY_VARIABLES or name.startswith("BATCHFETCH_"):
            monkeypatch.delenv(name)


@pytest.fixture
def child_env():
    """The environment for ``python -m batchfetch`` subprocesses: this checkout first on the
    path, and no proxy or BATCHFETCH_* variables (a developer's own must not leak in)."""
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    return {name: value for name, value in dict(os.environ, PYTHONPATH=root).items()
            if not name.startswith("BATCHFETCH_") and name.lower() not in _PROXY_VARIABLES}


@pytest.fixture
def wait_until():
    """``wait_until(condition)``: poll ``condition()`` cooperatively until it is true.

    No time limit of its own: a condition that never comes true is a hang, which
    pytest-timeout (60 s per test) reports. A limit of a few seconds here would be an
    upper bound that a loaded machine can break.
    """
    def wait(condition):
        while not condition():
            gevent.sleep(0.005)

    return wait


@pytest.fixture
def server():
    """A fresh loopback server for one test (port 0; counters start at zero)."""
    with LoopbackServer() as running:
        yield running


class HeldServer:
    """A keep-alive HTTP server on 127.0.0.1 whose answers (200 "ok") wait until ``released``
    is set: a request to it stays in flight until the test says so, whatever the machine's
    speed, where a delay would race the other requests. GET requests only; it counts
    ``connections_accepted`` and ``requests_received``."""

    def __init__(self) -> None:
        self.released = gevent.event.Event()
        self.connections_accepted = 0
        self.requests_received = 0
        self._listener = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)

    def __enter__(self) -> "HeldServer":
        self._listener.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.released.set()  # handlers still waiting answer (or find the client gone) and end
        self._listener.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._listener.server_port}{path}"

    def _handle(self, sock, _address) -> None:
        self.connections_accepted += 1
        received = b""
        try:
            while True:
                while b"\r\n\r\n" not in received:
                    chunk = sock.recv(65536)
                    if not chunk:
                        return
                    received += chunk
                received = received.partition(b"\r\n\r\n")[2]
                self.requests_received += 1
                self.released.wait()
                sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
        except OSError:
            pass  # the client cancelled its request or closed the connection


@pytest.fixture
def shares_at_once(monkeypatch):
    """With ``workers``, each worker process is given a share as soon as it has started,
    whether or not this process is busy (``engines.processes.BUSY``)."""
    from batchfetch.engines import processes

    monkeypatch.setattr(processes, "BUSY", 0.0)
    monkeypatch.setattr(processes, "BUSY_WINDOW", 0.01)


@pytest.fixture
def held_server():
    """A :class:`HeldServer`; released (and stopped) at the end of the test."""
    with HeldServer() as running:
        yield running


class CountingInput:
    """An endless input of one URL that counts how many items were pulled from it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pulled = 0

    def __iter__(self):
        for _ in range(10_000_000):
            self.pulled += 1
            yield self.url


@pytest.fixture
def counting_input(server):
    """A 10-million-item input of ``/ok`` whose ``pulled`` counts what was read."""
    return CountingInput(server.url("/ok"))


@pytest.fixture(scope="session")
def tls_ca():
    """A throwaway certificate authority (trustme) for TLS tests."""
    import trustme

    return trustme.CA()


@pytest.fixture
def tls_server(tls_ca, tmp_path):
    """A loopback HTTPS server whose certificate is signed by ``tls_ca``; yields (server, ca_path)."""
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    ca_path = tmp_path / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_path))
    with LoopbackServer(ssl_context=context) as running:
        yield running, str(ca_path)


@pytest.fixture(params=["fast_path", "requests_path"])
def both_paths(request, monkeypatch):
    """Run a test on both request paths: LeanSession's and requests' full Session path.

    Every documented option must behave the same on each (the performance issue's rule).
    """
    if request.param == "requests_path":
        from batchfetch.transport import requests_transport

        build = requests_transport.build_session
        monkeypatch.setattr(requests_transport, "build_session",
                            lambda options, *budget: build(options.replace(fast_path=False),
                                                           *budget))
        monkeypatch.setenv("BATCHFETCH_FAST_PATH", "false")  # for CLI subprocesses
    return request.param

"""A raw HTTP server for tests that must see a request's head as it arrived (a proxy's
view, each redirect hop's Cookie header) or answer what no loopback-server route answers
(a reason phrase, a Content-Type of the test's choosing)."""
from collections.abc import Callable, Iterable

import gevent.server

Answer = Callable[[str, dict], bytes]


def response(status: str = "200 OK", body: bytes = b"",
             headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A whole HTTP/1.1 response that closes its connection."""
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (f"HTTP/1.1 {status}\r\n{head}Content-Length: {len(body)}\r\nConnection: close"
            f"\r\n\r\n").encode("latin-1") + body


class HeadServer:
    """On 127.0.0.1 (also reachable as ``localhost``), port 0: records each request's line
    and headers (names lower-cased) in ``requests`` and answers ``answer(line, headers)``."""

    def __init__(self, answer: Answer = lambda line, headers: response(body=b"ok")) -> None:
        self.answer = answer
        self.requests: list[tuple[str, dict]] = []
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._serve)

    def _serve(self, sock, address) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return
            data += chunk
        line, *fields = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
        headers = {name.lower(): value.strip() for name, _, value in
                   (field.partition(":") for field in fields)}
        self.requests.append((line, headers))
        sock.sendall(self.answer(line, headers))
        sock.close()

    @property
    def port(self) -> int:
        return self.server.server_port

    def url(self, path: str = "", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self) -> "HeadServer":
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

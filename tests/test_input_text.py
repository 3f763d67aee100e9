"""The command's input is text: UTF-8, or UTF-16/32 with a byte order mark; anything else is
refused naming the line (issue 13, item 13). No sockets but the CLI tests' loopback server."""
import codecs
import io
import subprocess
import sys

import pytest
from click.testing import CliRunner

from batchfetch.cli.input_text import InputTextError, text_lines
from batchfetch.cli import main

URLS = "http://127.0.0.1/a\nhttp://127.0.0.1/caf\u00e9\r\n\nhttp://127.0.0.1/c"
LINES = [(1, "http://127.0.0.1/a"), (2, "http://127.0.0.1/caf\u00e9\r"), (3, ""),
         (4, "http://127.0.0.1/c")]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le",
                                      "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_utf8_and_any_utf16_or_utf32_with_a_byte_order_mark_read_alike(encoding):
    data = URLS.encode(encoding)
    if encoding in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
        data = "\ufeff".encode(encoding) + data  # what editors write: the mark, then text
    assert list(text_lines(io.BytesIO(data))) == LINES


def test_a_byte_at_a_time_from_a_pipe_reads_alike():
    class Trickle(io.RawIOBase):
        def __init__(self, data):
            self.data = data

        def readable(self):
            return True

        def read(self, size=-1):
            piece, self.data = self.data[:1], self.data[1:]
            return piece

    assert list(text_lines(Trickle(URLS.encode("utf-16")))) == LINES


@pytest.mark.parametrize("data, message", [
    (b"http://a/\nhttp://caf\xe9/\n", "line 2 of urls.txt is not UTF-8: byte 0xe9 at byte 11 of "
     "the line. "
     "batchfetch reads UTF-8 text, or UTF-16/UTF-32 that starts with a byte order mark: "
     "convert it first, e.g. iconv -f LATIN1 -t UTF-8 urls.txt"),
    ("http://a/\n".encode("utf-16-le"), "line 1 of urls.txt holds a NUL byte: not text "
     "(UTF-16 without a byte order mark?)"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "line 1 of urls.txt is not UTF-8: byte 0x89 at "
     "byte 1 of the line"),
    (b"GIF89a\n\x00\x01", "line 2 of urls.txt holds a NUL byte"),
    (b"\xff\xfeh\x00t", "line 1 of urls.txt is not valid UTF-16LE, though it starts with "
     "that byte order mark. batchfetch reads"),
    (b"ok\nnul\x00inside\n", "line 2 of urls.txt holds a NUL byte"),
])
def test_what_is_not_text_is_refused_naming_the_line(data, message):
    with pytest.raises(InputTextError) as raised:
        list(text_lines(io.BytesIO(data), "urls.txt"))
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def invoke(*args, input=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], input=input,
                              prog_name="batchfetch")


def test_a_utf16_file_gives_the_rows_of_its_urls(server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server.url('/ok')}\n{server.url('/json')}\n", encoding="utf-16")
    result = invoke("-q", "-r", "0", urls)
    assert result.exit_code == 0, result.output
    assert result.stdout.count('"ok": true') == 2


def test_a_file_that_is_not_text_exits_2_before_fetching_anything(server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_bytes(server.url("/ok").encode() + b"\n" + b"http://caf\xe9.example/\n")
    result = invoke("-r", "0", urls)
    assert result.exit_code == 2 and result.stdout == ""
    assert server.hits.get("/ok", 0) == 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert errors == [f"Error: line 2 of {urls} is not UTF-8: byte 0xe9 at byte 11 of the line. "
                      f"batchfetch reads UTF-8 text, or UTF-16/UTF-32 that starts with a byte "
                      f"order mark: convert it first, e.g. iconv -f LATIN1 -t UTF-8 {urls}"]


def test_binary_on_a_pipe_exits_2_with_one_line(child_env):
    """The command reading a real pipe, as `cat image.png | batchfetch` would."""
    result = subprocess.run([sys.executable, "-m", "batchfetch", "-q"], input=b"\x89PNG\x00\x01",
                            capture_output=True, env=child_env)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode() == (
        "Error: line 1 of standard input holds a NUL byte: not text (UTF-16 without a byte "
        "order mark?). batchfetch reads UTF-8 text, or UTF-16/UTF-32 that starts with a byte "
        "order mark: convert it first, e.g. iconv -f UTF-16LE -t UTF-8 FILE\n")


def test_a_bad_code_unit_deep_in_utf16_names_its_own_line():
    """The line count lagged by the lines of the chunk being decoded (line 3000 was
    reported as 2420)."""
    good = "".join(f"http://127.0.0.1/{n}\n" for n in range(1, 3000)).encode("utf-16-le")
    data = codecs.BOM_UTF16_LE + good + b"\x00\xd8" + "x\n".encode("utf-16-le")  # a lone half
    with pytest.raises(InputTextError, match=r"^line 3000 of urls.txt is not valid UTF-16LE"):
        list(text_lines(io.BytesIO(data), "urls.txt"))


def test_an_endless_binary_stream_is_refused_without_reading_it_all():
    """Zeros have no line end: the NUL is noticed in the first chunk, not at a line's end."""
    class Zeros(io.RawIOBase):
        def readable(self):
            return True

        def readinto(self, buffer):
            buffer[:] = bytes(len(buffer))
            return len(buffer)

    with pytest.raises(InputTextError, match="^line 1 of standard input holds a NUL byte"):
        next(text_lines(io.BufferedReader(Zeros())))


def test_a_long_line_reads_whole():
    line = "http://127.0.0.1/" + "a" * 1_000_000
    assert list(text_lines(io.BytesIO((line + "\nx").encode()))) == [(1, line), (2, "x")]

"""Every docstring example in the batchfetch package runs and shows what it says (issue 15).

Examples are written against ``http://127.0.0.1:8000`` (and ``localhost:8000`` as a second
host), as if a server listened there. Here each module's examples run against a fresh
:class:`~batchfetch.testing.LoopbackServer` instead: that address in their source and expected
output is replaced by the server's. They run in a temporary working directory, so an example
that writes a file (``hosts.toml``, ``rows.jsonl``) leaves nothing behind.
"""
import doctest
import importlib
import inspect
import pkgutil
import types

import pytest

import batchfetch
from batchfetch.testing import LoopbackServer

DOCUMENTED_PORT = 8000
DOCUMENTED_HOSTS = ("127.0.0.1", "localhost")

#: Modules that only run as ``python -m``: imported (to check they import), never searched.
ENTRY_POINTS = {"batchfetch.__main__", "batchfetch.engines._process_child"}

MODULES = ["batchfetch"] + sorted(
    info.name for info in pkgutil.walk_packages(batchfetch.__path__, "batchfetch."))

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def to_port(text: str, port: int) -> str:
    """``text`` with each documented ``host:8000`` made ``host:port``."""
    for host in DOCUMENTED_HOSTS:
        text = text.replace(f"{host}:{DOCUMENTED_PORT}", f"{host}:{port}")
    return text


def run_examples(module: types.ModuleType, port: int) -> tuple[int, str]:
    """Run ``module``'s docstring examples with ``DOCUMENTED_PORT`` read as ``port``; return
    how many examples were found and the runner's report of the failures ("" if none)."""
    found, report = 0, []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__):
        for example in test.examples:
            example.source, example.want = (to_port(example.source, port),
                                            to_port(example.want, port))
        found += len(test.examples)
        runner.run(test, out=report.append)
    return found, "".join(report)


@pytest.mark.parametrize("name", sorted(ENTRY_POINTS))
def test_entry_point_module_imports(name):
    importlib.import_module(name)


@pytest.mark.parametrize("name", [name for name in MODULES if name not in ENTRY_POINTS])
def test_docstring_examples(name, tmp_path, monkeypatch):
    module = importlib.import_module(name)
    monkeypatch.chdir(tmp_path)
    with LoopbackServer() as server:
        found, failures = run_examples(module, server.port)
    if failures:
        pytest.fail(f"{name}:\n{failures}", pytrace=False)
    # An example the finder cannot reach (a wrapper hiding a function's docstring) never runs.
    written = inspect.getsource(module).count(">>> ")
    assert found == written, f"{name}: {written - found} of its examples are not run"


def test_a_wrong_example_fails():
    """The runner can fail: a wrong expected output is reported, and the documented
    address is rewritten in both the source and the expected output."""
    module = types.ModuleType("batchfetch_wrong_example", """Example::

        >>> 1 + 1
        3
        >>> import requests
        >>> response = requests.get("http://127.0.0.1:8000/redirect-to?url=/ok")
        >>> response.status_code, response.url
        (200, 'http://127.0.0.1:8000/ok')
    """)
    with LoopbackServer() as server:
        found, failures = run_examples(module, server.port)
    assert found == 4
    assert failures.count("Failed example:") == 1
    assert "Expected:\n    3\nGot:\n    2" in failures

"""TLS verification against a trustme CA, and importing requests before batchfetch."""
import pytest
import subprocess
import sys
import textwrap

import certifi

from batchfetch import fetch_all

pytestmark = pytest.mark.usefixtures("both_paths")


def test_explicit_ca_bundle_wins_over_the_environment(tls_server, monkeypatch):
    """requests lets REQUESTS_CA_BUNDLE override Session.verify; ours must not."""
    server, ca_path = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    row = fetch_all([server.url("/ok")], verify=ca_path, retries=0)[0]
    assert (row.ok, row.status, row.error) == (True, 200, "")
    assert row.final_url.startswith("https://127.0.0.1:")


def test_untrusted_certificate_is_a_tls_error(tls_server, monkeypatch):
    server, _ = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    row = fetch_all([server.url("/ok")], retries=0)[0]
    assert (row.ok, row.status, row.error) == (False, None, "tls")
    assert "certificate verify failed" in row.message.lower()


def test_environment_ca_bundle_is_used_when_verify_is_true(tls_server, monkeypatch):
    server, ca_path = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca_path)
    assert fetch_all([server.url("/ok")], retries=0)[0].ok


def test_verify_false_skips_verification(tls_server):
    server, _ = tls_server
    assert fetch_all([server.url("/ok")], verify=False, retries=0)[0].status == 200


def _run_script(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)


def test_requests_imported_first_warns_with_the_fix_and_still_works(tls_server):
    server, ca_path = tls_server
    result = _run_script(f"""
        import warnings
        warnings.simplefilter("always")
        import requests
        import batchfetch
        row = batchfetch.fetch_all([{server.url('/ok')!r}], verify={ca_path!r}, retries=0)[0]
        print(row.status, row.error or "ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["200", "ok"]
    assert "ImportOrderWarning" in result.stderr
    assert "make `import batchfetch` the first import" in result.stderr
    assert "<string>:5" in result.stderr  # points at the user's import line
    assert "MonkeyPatchWarning" not in result.stderr


def test_importing_batchfetch_first_warns_nothing():
    result = _run_script("""
        import warnings
        warnings.simplefilter("always")
        import batchfetch, grequests, requests
        from gevent import monkey
        print(monkey.is_module_patched("socket"), monkey.is_module_patched("threading"))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False"]
    assert "Warning" not in result.stderr

"""The native transport's reliance on parts of geventhttpclient it does not document:
checked at import, with requests' own path taking over (and one warning) when a part is
missing or the version is not one the tests cover."""
import subprocess
import sys
import textwrap

import pytest

from batchfetch.transport._ghc import PROBLEMS, find_problems


def test_the_installed_libraries_have_everything_the_native_transport_uses():
    assert PROBLEMS == [] and find_problems() == []


@pytest.mark.parametrize("change", [
    "import geventhttpclient.response as r; del r.HTTPResponse._on_status",
    "import geventhttpclient; geventhttpclient.__version__ = '2.7.0'",
])
def test_a_geventhttpclient_without_what_it_relies_on_turns_the_native_path_off(
        server, child_env, change):
    """Simulated in a child process before batchfetch is imported."""
    script = textwrap.dedent(f"""
        import warnings
        {change}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import batchfetch
        from batchfetch.transport import session
        table = batchfetch.fetch_all([{server.url("/ok")!r}], auth=("ann", "pw"))
        print(len([w for w in caught if "native transport is off" in str(w.message)]))
        print(session.build_session(batchfetch.FetchOptions()).__class__.__name__)
        print(table[0].status)
        from batchfetch.transport import TRANSPORTS
        print(",".join(choice.name for choice in TRANSPORTS if choice.available))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=child_env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "HopSession", "200", "requests"]

"""The fast path's reliance on private parts of requests and http.client: checked at import,
with requests' own path taking over (and one warning) when a part is missing."""
import subprocess
import sys
import textwrap

from batchfetch.transport._internals import PROBLEMS, find_problems


def test_the_installed_libraries_have_everything_the_fast_path_uses():
    assert PROBLEMS == [] and find_problems() == []


def test_a_requests_whose_responses_grew_an_attribute_turns_the_fast_path_off(server, child_env):
    """A later requests whose Response.__init__ sets an attribute the fast path's responses
    would lack: simulated in a child process before batchfetch is imported."""
    script = textwrap.dedent(f"""
        import warnings
        import requests

        original = requests.Response.__init__

        def grown(self):
            original(self)
            self._added_in_a_later_requests = None

        requests.Response.__init__ = grown
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import batchfetch
        from batchfetch.transport import session
        table = batchfetch.fetch_all([{server.url("/ok")!r}], auth=("ann", "pw"))
        print(len([w for w in caught if "fast path is off" in str(w.message)]))
        print(session.build_session(batchfetch.FetchOptions()).__class__.__name__)
        print(table[0].status)
        from batchfetch.transport import TRANSPORTS
        print(",".join(choice.name for choice in TRANSPORTS if choice.available))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=child_env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "HopSession", "200", "requests"]

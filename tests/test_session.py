"""RequestSettings: what is resolved once per run or per host, and stays bounded."""
from batchfetch import FetchOptions
from batchfetch.inputs import host_key, to_spec
from batchfetch.transport.hops import HOST_CACHE_SIZE, HostEnvironment
from batchfetch.transport.session import RequestSettings


def settings_for(options):
    return RequestSettings(options, HostEnvironment(options.proxies, options.auth))


def test_per_host_settings_stay_bounded_on_many_hosts(monkeypatch):
    """A huge input over many hosts must not grow the per-host cache without end."""
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    options = FetchOptions()
    settings = settings_for(options)
    for port in range(1, HOST_CACHE_SIZE * 2 + 2):
        spec = to_spec(f"http://127.0.0.{port % 250 + 1}:{port}/", options)
        kwargs = settings.kwargs(spec, host_key(spec.url))
        assert kwargs["proxies"] == {"http": "http://127.0.0.1:3128"}
    assert len(settings._environment._per_host) <= HOST_CACHE_SIZE


def test_explicit_settings_win_over_the_environment(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not read here")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    options = FetchOptions(verify=str(bundle), proxies={})
    spec = to_spec("http://127.0.0.1/", options)
    kwargs = settings_for(options).kwargs(spec, host_key(spec.url))
    assert kwargs["verify"] == str(bundle) and kwargs["proxies"] == {}
    assert kwargs["stream"] is True and kwargs["timeout"] == (10.0, 30.0)

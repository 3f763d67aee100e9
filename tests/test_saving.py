"""save_dir: bodies streamed to safe, unique, stable files; cut bodies leave nothing."""
import os

import pytest

from batchfetch import FetchOptions, OptionError, fetch_all
from batchfetch.saving import MAX_NAME, file_name_for
from batchfetch.testing import pattern_bytes
from batchfetch.testing.routes import random_bytes

pytestmark = pytest.mark.usefixtures("both_paths")


def test_bodies_are_saved_and_named_on_the_row(server, tmp_path):
    target = tmp_path / "bodies"
    table = fetch_all([server.url("/bytes/70000"), server.url("/gzip/1000"),
                       server.url("/status/404")], save_dir=str(target), retries=0)
    paths = [row.path for row in table]
    assert all(path.startswith(str(target) + os.sep) for path in paths)
    assert open(paths[0], "rb").read() == pattern_bytes(70000)
    assert open(paths[1], "rb").read() == b"\0" * 1000  # decoded, as the row's size
    assert open(paths[2], "rb").read() == b"status 404\n"
    assert sorted(os.listdir(target)) == sorted(os.path.basename(p) for p in paths)


def test_bodies_read_at_once_are_saved_byte_for_byte(server, tmp_path):
    # Bodies nobody keeps in memory are read into one buffer the reads take turns at:
    # each saved file must hold its own bytes, whatever the others did meanwhile.
    sizes = {seed: 700_000 + seed for seed in range(12)}
    urls = [server.url(f"/random/{size}?seed={seed}" + ("&chunked=1" if seed >= 8 else ""))
            for seed, size in sizes.items()]
    table = fetch_all(urls, save_dir=str(tmp_path), concurrency=12)
    for (seed, size), row in zip(sizes.items(), table):
        assert (row.ok, row.size) == (True, size), row
        assert open(row.path, "rb").read() == random_bytes(str(seed), size)


HOSTILE = ["/../../../../tmp/escape", "/%2e%2e%2f%2e%2e%2fescape", "//etc/passwd",
           "/" + "n" * 3000, "/a%00b", "/same", "/same", "/dir/", "/%C3%A9t%C3%A9"]


def test_hostile_urls_stay_inside_the_directory_with_unique_names(server, tmp_path):
    target = tmp_path / "inside"
    table = fetch_all([server.url(path) for path in HOSTILE], save_dir=str(target),
                      ok_status="100-599", retries=0)
    paths = [row.path for row in table]
    assert all(row.ok for row in table), [row.message for row in table]
    assert len(set(paths)) == len(HOSTILE)
    for path in paths:
        assert os.path.dirname(path) == str(target)
        assert len(os.path.basename(path)) <= MAX_NAME
    assert sorted(os.listdir(target)) == sorted(os.path.basename(p) for p in paths)
    assert os.listdir(tmp_path) == ["inside"]


def test_names_are_stable_across_runs(server, tmp_path):
    first = fetch_all([server.url("/json")], save_dir=str(tmp_path), retries=0)[0].path
    second = fetch_all([server.url("/json")], save_dir=str(tmp_path), retries=0)[0].path
    assert first == second and os.listdir(tmp_path) == [os.path.basename(first)]
    assert file_name_for(3, "http://h/x.json") == "00000003_h_x.json"


@pytest.mark.parametrize("path, options", [
    ("/bytes/5000000", {"max_bytes": 100_000}),
    ("/fault/truncated?length=100000&send=5000", {}),
    ("/fault/trickle?interval=0.2&bytes=20", {"deadline": 0.3}),
])
def test_a_cut_body_leaves_no_file(server, tmp_path, path, options):
    row = fetch_all([server.url(path)], save_dir=str(tmp_path), retries=0, **options)[0]
    assert not row.ok and row.path == ""
    assert os.listdir(tmp_path) == []


def test_save_dir_must_be_a_directory(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(OptionError, match="save_dir"):
        FetchOptions(save_dir=str(a_file))


def test_planted_links_are_replaced_never_written_through(server, tmp_path):
    """Issue 13, item 2: a NAME.part symlink in DIR received the body at its target outside
    DIR, and was then renamed to the final name."""
    target, outside = tmp_path / "bodies", tmp_path / "outside"
    target.mkdir()
    outside.mkdir()
    victims = {}
    for index, suffix in ((0, ".part"), (1, "")):
        victim = outside / f"victim{index}"
        victim.write_bytes(b"precious")
        name = file_name_for(index, server.url("/bytes/100"))
        (target / (name + suffix)).symlink_to(victim)
        victims[name] = victim
    table = fetch_all([server.url("/bytes/100")] * 2, save_dir=str(target), retries=0)
    assert [row.error for row in table] == ["", ""]
    for name, victim in victims.items():
        assert victim.read_bytes() == b"precious"
        saved = target / name
        assert not saved.is_symlink() and saved.read_bytes() == pattern_bytes(100)
    assert sorted(os.listdir(target)) == sorted(victims)


def test_a_body_that_cannot_be_written_is_a_save_row(server, tmp_path):
    """An OSError while saving was classified as 'connect' and retried."""
    name = file_name_for(0, server.url("/bytes/100"))
    (tmp_path / name).mkdir()  # a directory where the file goes: the rename fails
    row = fetch_all([server.url("/bytes/100"), server.url("/json")], save_dir=str(tmp_path),
                    retries=2)[0]
    assert (row.ok, row.error, row.status, row.attempts, row.path) == (False, "save", 200, 1, "")
    assert row.message.startswith(f"cannot save the body to {tmp_path / name}: ")
    assert sorted(os.listdir(tmp_path)) == sorted([name, file_name_for(1, server.url("/json"))])

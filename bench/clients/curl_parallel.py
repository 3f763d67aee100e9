"""curl --parallel --parallel-max C over a -K config file of ``url``/``output`` lines.

This wrapper writes the config (before the clock starts: it is curl's input
file), runs curl, and counts the ``-w`` line curl prints for every transfer. Its
own CPU and memory are included in the harness's numbers; both are small next to
curl's. With --retries/--deadline: ``--retry N --fail`` and ``--max-time S``.

Bodies go to /dev/null, except with --retries: curl truncates a transfer's output
before retrying it and cannot truncate /dev/null (exit 23, the transfer lost), so
then every transfer writes to one scratch file that curl may truncate at will.
A transfer curl never reports (no ``-w`` line) counts as failed.
"""
import os
import subprocess
import tempfile
import time

import common


def write_config(urls, directory: str, output: str) -> tuple[str, int]:
    """The -K file: a ``url`` and an ``output`` line per URL; returns (path, URL count)."""
    path = os.path.join(directory, "curl.cfg")
    count = 0
    with open(path, "w", encoding="utf-8") as config:
        for url in urls:
            config.write(f'url = "{url}"\noutput = "{output}"\n')
            count += 1
    return path, count


def main() -> None:
    args = common.parse_args(__doc__)
    tally = common.Tally()
    with tempfile.TemporaryDirectory(prefix="bench-curl-") as directory:
        output = os.path.join(directory, "bodies") if args.retries else "/dev/null"
        config, count = write_config(common.iter_urls(args.url_file), directory, output)
        # -q first: ignore any ~/.curlrc; --noproxy '*': loopback traffic never goes to a proxy.
        command = ["curl", "-q", "--silent", "--noproxy", "*", "--parallel",
                   "--parallel-immediate", "--parallel-max", str(args.concurrency),
                   "--connect-timeout", str(common.CONNECT_TIMEOUT),
                   "--write-out", "%{http_code} %{size_download}\\n", "-K", config]
        if args.retries:
            command += ["--retry", str(args.retries), "--fail"]
        if args.deadline:
            command += ["--max-time", str(args.deadline)]
        started = time.perf_counter()
        with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as curl:
            for line in curl.stdout:
                status, size = line.split()
                status = int(status)
                tally.response(status or None, int(size), "" if status else "no response")
        elapsed = time.perf_counter() - started
    for _ in range(count - tally.ok - tally.failed):
        tally.failure(f"not reported (curl exit {curl.returncode})")
    common.report("curl", tally, elapsed, returncode=curl.returncode)


if __name__ == "__main__":
    main()

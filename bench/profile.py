"""Profile the batchfetch client on one workload with py-spy and print where the time goes.

    python bench/profile.py                  # W1, 20,000 GETs of 1 KiB at concurrency 64
    python bench/profile.py --workload W2 --top 25 --raw /tmp/w2.raw

Starts the workload's server like bench/run.py does, runs bench/clients/batchfetch_client.py
under ``py-spy record`` (installed with pip when missing), and prints the top functions by
own time and the own time per layer (batchfetch, requests, urllib3, gevent, ...). Keep the
raw file (--raw) to draw a flame graph with any tool that reads collapsed stacks.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile

from harness import profiling, runner, servers, workloads

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", default="W1", help="W1, W2, W4, W5, W8, ... (default: W1)")
    parser.add_argument("--quick", action="store_true", help="the smoke-test counts")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument("--rate", type=int, default=250, help="samples per second")
    parser.add_argument("--raw", default=None, help="keep py-spy's raw output here")
    parser.add_argument("--batchfetch-path", default=os.path.dirname(BENCH_DIR))
    args = parser.parse_args()
    workload = workloads.define(args.quick)[args.workload.upper()]
    workdir = tempfile.mkdtemp(prefix="batchfetch-profile-")
    os.chmod(workdir, 0o755)  # nginx's workers run as nobody and serve a file from here
    raw = args.raw or os.path.join(workdir, "profile.raw")
    server = servers.new(workload.server, workdir, workloads.pace_server_settings()).start()
    try:
        url_file = os.path.join(workdir, "urls")
        workload.write_urls(server, "profile", url_file)
        client = runner.client_command("batchfetch", workload, url_file)
        subprocess.run([profiling.py_spy(), "record", "--rate", str(args.rate), "--format", "raw",
                        "--output", raw, "--", *client],
                       env=runner.client_env(os.path.abspath(args.batchfetch_path)), check=True)
    finally:
        server.stop()
    print(profiling.summarize(raw, args.top))
    print("\nparts (the first that a sample's stack shows):")
    for label, share in profiling.parts(raw).items():
        print(f"  {share:6.1%}  {label}")
    print(f"\nraw stacks: {raw}")


if __name__ == "__main__":
    main()

"""The batchfetch benchmark harness: servers, workloads, client runs and the report.

Nothing here imports batchfetch, gevent or grequests: they patch the process they
are imported into, and every client must run in a process of its own.
"""

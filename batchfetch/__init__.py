"""batchfetch: fetch many URLs concurrently and get one trustworthy row per URL.

Importing batchfetch monkey-patches the process with gevent (sockets, ssl,
time, ...; not threads or select), exactly as grequests does. Import it before
``requests``, ``urllib3`` or ``ssl``; otherwise it warns and repairs what it can.

Example::

    >>> from batchfetch import fetch_all
    >>> table = fetch_all(["http://127.0.0.1:8000/ok"], concurrency=50, timeout=10)
"""
from . import _gevent  # noqa: F401  (must stay first: patches the process)
from ._gevent import ImportOrderWarning

import logging

from ._version import __version__
from .config import FetchOptions
from .api import Fetcher, fetch_all, iter_fetch
from .errors import (ERROR_KINDS, BatchFetchError, BodyTooLargeError, BrokerError,
                     DeadlineExceeded, ErrorKind, FetchFailedError, HostRulesError, HTTPStatusError,
                     InvalidItemError, OptionError, RowError, SaveError, StoreError)
from .host_rules import HostRule, HostRules
from .inputs import RequestSpec
from .policies import Limits, RetryPolicy, Timeouts
from .results import BodyNotKept, FetchResult, Summary
from .resume import ResumeError
from .table import PANDAS_DTYPES, ResultTable

logging.getLogger("batchfetch").addHandler(logging.NullHandler())

__all__ = [
    "BatchFetchError",
    "BodyNotKept",
    "BodyTooLargeError",
    "BrokerError",
    "DeadlineExceeded",
    "ERROR_KINDS",
    "ErrorKind",
    "FetchFailedError",
    "FetchOptions",
    "Fetcher",
    "FetchResult",
    "HTTPStatusError",
    "HostRule",
    "HostRules",
    "HostRulesError",
    "ImportOrderWarning",
    "InvalidItemError",
    "Limits",
    "OptionError",
    "PANDAS_DTYPES",
    "RequestSpec",
    "ResultTable",
    "ResumeError",
    "StoreError",
    "RetryPolicy",
    "RowError",
    "SaveError",
    "Summary",
    "Timeouts",
    "__version__",
    "fetch_all",
    "iter_fetch",
]

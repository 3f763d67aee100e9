"""One attempt at one request through a requests Session: send it with grequests, read
the body under the deadline.

Runs in an attempt greenlet and never raises: whatever happens comes back as an
:class:`~batchfetch.transport.base.Outcome` for the scheduler, which alone decides on
retries and rows.
"""
from __future__ import annotations

import hashlib
import logging
from typing import Any

import gevent
import grequests
import requests
from urllib3 import HTTPHeaderDict

from ..config import FetchOptions
from ..errors import BodyTooLargeError, DeadlineExceeded, ErrorKind, classify
from ..redaction import mask_url
from ..results import grouped_headers
from ..saving import BodyFile
from .base import Outcome

__all__ = ["Outcome", "run_attempt"]

log = logging.getLogger("batchfetch")

#: Bytes read per chunk; large enough to keep per-chunk overhead low.
CHUNK_SIZE = 64 * 1024
NOT_MODIFIED = 304


def _read_body(response: requests.Response, outcome: Outcome, options: FetchOptions,
               index: int, url: str) -> None:
    """Stream the decoded body: count it, keep or save it if asked, stop at max_bytes."""
    keep = options.keep_body
    limit = options.body_limit
    # A 304 has no body: saving one would put an empty file over the body it stands for.
    saving = options.save_dir and response.status_code != NOT_MODIFIED
    sink = BodyFile(options.save_dir, index, url, held=options.since is not None) \
        if saving else None
    chunks: list[bytes] = []
    # As it streams: 0.8 s of CPU per GiB here, which a run pays only when it asks.
    digest = hashlib.sha256() if options.hash_body else None
    size = 0
    chunk_size = CHUNK_SIZE
    if not keep and hasattr(response.raw, "lend_chunks"):  # the native transport's
        lent_size = response.raw.lend_chunks()  # no chunk is kept past its turn in the loop
        if limit is None:  # with one, requests' steps: the size at the cut is the same
            chunk_size = lent_size
    try:
        for chunk in response.iter_content(chunk_size):
            size += len(chunk)
            outcome.size = size
            if limit is not None and size > limit:
                raise BodyTooLargeError(limit, automatic=options.max_bytes == "auto")
            if keep:
                chunks.append(chunk)
            if sink is not None:
                sink.write(chunk)
            if digest is not None:
                digest.update(chunk)
        if sink is not None:
            # With since, the run loop keeps the file or drops it once it knows the row's
            # change: a retried 503's body must not replace the previous run's file.
            outcome.path = sink.hold() if options.since is not None else sink.commit()
            sink = None
        if digest is not None:
            outcome.sha256 = digest.hexdigest()
    except BaseException:
        # The exception's traceback holds this frame, and the row's exception holds the
        # traceback: without this, the body read so far lives until the cycle collector runs
        # (bytes do not trigger it), 10 MiB per row cut at the kept-body cap.
        chunks.clear()
        raise
    finally:
        if sink is not None:
            sink.discard()  # a cut body leaves no partial file behind
        # After a full read this returns the connection to the pool; after a cut
        # (an error, a cap, the deadline) it closes the connection instead of
        # draining a body nobody wants.
        response.close()
    if keep:
        outcome.body = b"".join(chunks)


def _header_items(response: requests.Response) -> list[tuple[str, str]]:
    """The final response's header lines, a repeated header's one by one (requests' own
    ``headers`` joins them): from the native transport's answer, or urllib3's."""
    raw = response.raw
    if hasattr(raw, "header_items"):
        return raw.header_items()
    if isinstance(getattr(raw, "headers", None), HTTPHeaderDict):
        return list(raw.headers.items())  # urllib3's items() gives each value of a name
    return list(response.headers.items())


def run_attempt(session: requests.Session, method: str, url: str, kwargs: dict[str, Any],
                options: FetchOptions, index: int = 0) -> Outcome:
    """Make one attempt and describe it. Never raises (except GreenletExit on cancel).

    ``index`` (the input position) names the file a body is saved to with ``save_dir``.

    Example::

        >>> session = requests.Session()
        >>> outcome = run_attempt(session, "GET", "http://127.0.0.1:8000/ok",
        ...                       {"timeout": 5, "stream": True}, FetchOptions())
        >>> outcome.status, outcome.error
        (200, '')
    """
    outcome = Outcome()
    deadline = options.deadline
    # gevent.Timeout raises our DeadlineExceeded (an Exception) in this greenlet,
    # wherever it is blocked: grequests' send() catches it like any failure.
    timer = gevent.Timeout(deadline, DeadlineExceeded(deadline)) if deadline else None
    if timer is not None:
        timer.start()
    try:
        request = grequests.AsyncRequest(method, url, session=session, **kwargs)
        request.send()
        response = request.response
        if response is None:
            raise request.exception
        outcome.status = response.status_code
        outcome.reason = response.reason or ""
        outcome.final_url = response.url
        outcome.content_type = response.headers.get("Content-Type", "")
        outcome.retry_after = response.headers.get("Retry-After")
        outcome.etag = response.headers.get("ETag", "")
        outcome.last_modified = response.headers.get("Last-Modified", "")
        if options.response_headers or options.header_columns:
            outcome.headers = grouped_headers(
                _header_items(response), None if options.response_headers else
                {name.lower() for name in options.header_columns})
        _read_body(response, outcome, options, index, url)
    except Exception as exc:  # noqa: BLE001 - every failure becomes an error kind
        outcome.exception = exc
        outcome.error, outcome.message = classify(exc)
        if outcome.error == ErrorKind.PROTOCOL and not isinstance(exc, requests.RequestException):
            log.warning("unexpected exception fetching %s", mask_url(url), exc_info=exc)
    finally:
        if timer is not None:
            timer.close()
    return outcome

"""Change detection across runs (``since``): what each row of this run changed against
the previous run's (:mod:`batchfetch.previous`).

A matched input whose previous row was ok and had an ETag or a Last-Modified is sent with
If-None-Match or If-Modified-Since, and a 304 to it is an ok row that carries the previous
row's validators and ``sha256`` forward. Each row's ``change`` is one of :data:`CHANGES`.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator
from typing import Any

from .config import FetchOptions
from .errors import InvalidItemError, SaveError, SinceError
from .inputs import RequestSpec, check_url, request_hash, to_spec
from .previous import PreviousRow, PreviousRows, id_key, url_key
from .redaction import mask_url
from .results import CHANGE_ORDER, FetchResult
from .saving import HELD_SUFFIX, drop_all_held, kept_path, settle

__all__ = ["CHANGES", "Changes", "PreviousRow", "PreviousRows", "SinceError", "change_of"]

log = logging.getLogger("batchfetch")

#: What a row's ``change`` may say, with ``since``.
CHANGES = CHANGE_ORDER
NEW, SAME, CHANGED, MOVED, GONE, FAILED = CHANGES
#: The statuses that say a page that was there is gone.
GONE_STATUSES = frozenset({404, 410})
NOT_MODIFIED = 304
#: The methods whose request is sent with validators.
_SAFE = frozenset({"GET", "HEAD"})
#: The validators a request may carry already (the caller's own win).
_CONDITIONAL = ("if-none-match", "if-modified-since", "if-match", "if-unmodified-since",
                "if-range")


def change_of(row: FetchResult, previous: PreviousRow | None,
              not_modified: bool = False) -> str:
    """What changed for ``row`` since ``previous``: the first of failed, new, gone, moved,
    changed and same that applies (``not_modified``: the server answered 304 to the
    previous row's validators). A HEAD row has no body to compare: it is the same when its
    ETag and Last-Modified are the previous row's.

    Example::

        >>> before = PreviousRow(ok=True, status=200, final_url="http://h/a", sha256="ab")
        >>> now = FetchResult(0, "http://h/a", ok=True, status=200, final_url="http://h/a",
        ...                   sha256="cd")
        >>> change_of(now, before), change_of(now, None), change_of(now, PreviousRow(False))
        ('changed', 'new', 'changed')
    """
    gone = previous is not None and previous.ok and row.status in GONE_STATUSES \
        and row.error in ("", "http")
    if not (row.ok or not_modified or gone):
        return FAILED  # no answer that says anything about the page
    if previous is None:
        return NEW
    if gone:
        return GONE
    if previous.final_url and row.final_url and row.final_url != previous.final_url:
        return MOVED
    if not_modified:
        return SAME
    if not previous.ok:
        return CHANGED
    if row.method == "HEAD":  # no body to hash: the validators say it, if there are any
        validators = (row.etag, row.last_modified)
        return SAME if any(validators) and validators == (
            previous.etag, previous.last_modified) else CHANGED
    if not previous.sha256 or row.sha256 != previous.sha256:
        return CHANGED
    return SAME


@dataclasses.dataclass(slots=True)
class _Sent:
    """An input on its way: the item as given, the item sent, and its previous row."""

    item: Any
    sent: Any
    previous: PreviousRow | None
    #: The request carries the previous row's validators (ours, or the caller's own).
    conditional: bool
    #: The URL requested (unmasked): its body's file is named by it.
    url: str = ""


class Changes:
    """The ``since`` of one run: :meth:`sending` adds validators to the inputs on their way
    to the engine, and :meth:`mark` gives each row its ``change`` (a 304 made ok and
    carrying the previous validators and hash, a held body kept or dropped) and the item
    as given; :meth:`forget` drops the bodies held for rows that will not come."""

    def __init__(self, options: FetchOptions) -> None:
        if options.since is None:
            raise ValueError("Changes needs options with since")
        self.options = options
        self.previous = PreviousRows(options.since)
        if self.previous.empty_store:
            log.warning("%s holds no finished run yet: every row is new", options.since)
        elif not self.previous.count:
            log.warning("%s holds no rows: every row is new", options.since)
        # A URL string's request is the options' own: what it sends beyond the URL, and
        # whether the options name a validator, are the same for every one (unless host
        # rules add headers by host).
        self._plain = options.hosts is None
        plain = to_spec("http://127.0.0.1/", options)
        self._plain_hash = request_hash(plain)
        self._plain_validators = _validators_named(plain.headers)

    def sending(self, pairs: Iterator[tuple[int, Any]]) -> Iterator[tuple[int, _Sent]]:
        """``(index, record)`` for each of ``pairs``: ``record.sent`` is the item to send,
        with If-None-Match / If-Modified-Since added when its previous row was ok and had
        the validator and the caller's request names none, and ``record.item`` the item
        as given. The run loop keeps the records of the inputs owed a row, and gives each
        back to :meth:`mark` with its row."""
        for index, item in pairs:
            yield index, self._looked_up(item)

    def _looked_up(self, item: Any) -> _Sent:
        try:
            if isinstance(item, str) and self._plain:  # the common case, without to_spec
                method, requested = self.options.method, check_url(item)
                url = mask_url(requested)
                keys = None, url_key(method, url, self._plain_hash)
                asks = self._plain_validators
            else:
                spec = to_spec(item, self.options)
                method, requested, url = spec.method, spec.url, mask_url(spec.url)
                keys = id_key(spec.id), url_key(method, url, request_hash(spec))
                asks = _validators_named(spec.headers)
        except InvalidItemError:
            return _Sent(item, item, None, False)  # its row is an error row: failed
        previous = self.previous.find_by_keys(*keys)
        # Validators name what the previous row's request answered: they go with the same
        # request only (an id's row may have another URL), after an ok row, and with GET
        # or HEAD (on a POST, a matching If-None-Match asks for 412 instead of the action).
        usable = previous is not None and previous.ok and previous.key == keys[1]
        if asks:  # the caller's own: a 304 says the same when they are the previous row's
            return _Sent(item, item, previous, usable and _same_validators(asks, previous),
                         requested)
        validators = {}
        if usable and method in _SAFE:
            # A value a server sent that no request may carry (a control character, or
            # beyond ASCII, which neither header has) is left out, rather than making the
            # input an invalid request.
            for name, value in (("If-None-Match", previous.etag),
                                ("If-Modified-Since", previous.last_modified)):
                if value and value.isascii() and value.isprintable():
                    validators[name] = value
        if not validators:
            return _Sent(item, item, previous, False, requested)
        return _Sent(item, _with_headers(item, validators), previous, True, requested)

    def _keeps(self, row: FetchResult, change: str, previous: PreviousRow | None) -> bool:
        """Whether a held body is kept: with changed_only, a new or changed one (and a
        moved one that differs: it is new content); else an ok row's, and a failed row's
        (a gone one's too) only where it replaces no file (the previous run's body)."""
        if self.options.changed_only:
            return change in (NEW, CHANGED) or (change == MOVED and (
                not previous.sha256 or previous.sha256 != row.sha256))
        return row.ok or not os.path.exists(kept_path(row.path))

    def _saved(self, previous: PreviousRow) -> bool:
        """Whether the previous row's saved body is there to point at (with save_dir)."""
        return bool(self.options.save_dir and previous.path and os.path.isfile(previous.path))

    def mark(self, row: FetchResult, sent: _Sent) -> tuple[FetchResult, Any]:
        """``row`` (the answer to ``sent``, a record :meth:`sending` gave) with its
        ``change`` (and what a 304 carries forward), and the item as the caller gave it."""
        previous = sent.previous
        fields: dict[str, Any] = {}
        not_modified = sent.conditional and row.status == NOT_MODIFIED \
            and row.error in ("", "http")
        if not_modified:  # ok whatever ok_status says, with what the previous row had
            fields.update(ok=True, error="", message="", etag=row.etag or previous.etag,
                          last_modified=row.last_modified or previous.last_modified)
            # The validators follow a redirect: after one to another place than last time,
            # the 304 is another resource's (an ETag equal by chance: nginx's are mtime and
            # size), whose body nobody hashed. Nothing but the validators is carried.
            if row.final_url != previous.final_url:
                fields["sha256"] = ""  # not the hash of a 304's empty body
            else:
                fields.update(sha256=previous.sha256,
                              content_type=row.content_type or previous.content_type)
                if self._saved(previous):
                    fields["path"] = previous.path  # where the body it stands for is
        fields["change"] = change = change_of(row, previous, not_modified)
        if row.path.endswith(HELD_SUFFIX):
            keep = self._keeps(row, change, previous)
            try:
                fields["path"] = settle(row.path, keep)
                if not keep and change == SAME and self._saved(previous):
                    fields["path"] = previous.path  # where the same body is already
            except SaveError as exc:
                fields.update(path="", ok=False, error="save", message=str(exc),
                              change=FAILED)
        return _replaced(row, fields), sent.item

    def forget(self, owed: Iterable[tuple[int, _Sent]]) -> None:
        """Drop the bodies held for inputs whose rows will not come (a run stopped)."""
        if self.options.save_dir:
            for index, sent in owed:
                if sent.url:
                    drop_all_held(self.options.save_dir, index, sent.url)

    def close(self) -> None:
        """Drop the previous run's index."""
        self.previous.close()


def _replaced(row: FetchResult, fields: dict[str, Any]) -> FetchResult:
    """``row`` with ``fields`` (plain values, no ErrorKind) set: the engine's own new row,
    which nobody has seen yet, is completed in place. A frozen row is frozen for the
    caller; building it again, one per input, cost 3 us of the 17 us a row compared."""
    for name, value in fields.items():
        object.__setattr__(row, name, value)
    return row


def _validators_named(headers: Any) -> dict[str, str]:
    """The validators request ``headers`` name already (the caller's own win), by lower
    case name."""
    return {name.lower(): value for name, value in (headers or {}).items()
            if name.lower() in _CONDITIONAL}


def _same_validators(named: dict[str, str], previous: PreviousRow) -> bool:
    """Whether the caller's validators are the previous row's (so a 304 says the same)."""
    tag, since = named.get("if-none-match"), named.get("if-modified-since")
    return bool((tag or since) and tag in (None, previous.etag)
                and since in (None, previous.last_modified))


def _with_headers(item: Any, headers: dict[str, str]) -> Any:
    """``item`` (valid: a URL, a spec dict or a RequestSpec) with ``headers`` added."""
    if isinstance(item, str):
        return {"url": item, "headers": headers}
    if isinstance(item, RequestSpec):
        return dataclasses.replace(item, headers={**(item.headers or {}), **headers})
    return {**item, "headers": {**(item.get("headers") or {}), **headers}}

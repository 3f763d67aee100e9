"""Turning input items (URL strings, dicts, RequestSpec) into request specs.

An item that cannot become a request raises :class:`InvalidItemError`; the
dispatcher turns that into an error row, so one bad line never stops a batch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from .config import FetchOptions
from .errors import ErrorKind, InvalidItemError
from .headers import (first_cookie_problem, first_header_problem, form_problem,
                      multipart_parts)
from .methods import normalize_method
from .redaction import mask_line
from .results import FetchResult
from .urls import DEFAULT_PORTS, SCHEME, HostKeys, host_key, is_plain_url

__all__ = ["RequestSpec", "to_spec", "error_row", "host_key", "HostKeys", "SPEC_KEYS",
           "request_hash"]

#: The Content-Type of a str or bytes body that names none, as curl's -d sends it.
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
#: Keys a dict item may have.
SPEC_KEYS = frozenset({"url", "method", "headers", "params", "json", "data", "files",
                       "cookies", "id"})


@dataclasses.dataclass(frozen=True)
class RequestSpec:
    """One request to make: the URL and what the item (merged over the run's options) says.

    Users may pass RequestSpec objects, or dicts with the same keys, as input items.

    Example::

        >>> RequestSpec("https://api.example/v1/items", method="POST", json={"n": 1}, id=7)
        RequestSpec(url='https://api.example/v1/items', method='POST', ...)
    """

    url: str
    method: str | None = None
    headers: Mapping[str, str] | None = None
    params: Any = None
    json: Any = None
    data: Any = None
    #: Multipart parts: name -> text, or ``{"path": FILE}`` (with optional ``"type"`` and
    #: ``"filename"``) for a file (:func:`multipart_parts`); after :func:`to_spec`, the
    #: parts as requests' ``files`` takes them.
    files: Mapping[str, Any] | None = None
    cookies: Mapping[str, str] | None = None
    id: Any = None

    def __repr__(self) -> str:
        return f"RequestSpec(url={self.url!r}, method={self.method!r}, ...)"


def check_url(url: Any) -> str:
    """Return ``url`` stripped if requests can send it, else raise ``invalid_url``.

    Spaces in a path are fine (requests quotes them); long URLs are sent as they are.
    """
    if not isinstance(url, str):
        raise InvalidItemError(ErrorKind.INVALID_URL,
                               f"URL must be a string, got {type(url).__name__}")
    url = url.strip()
    if is_plain_url(url):
        return url  # the common case, without parse_url's cost (a twentieth of a request's)
    if not url:
        raise InvalidItemError(ErrorKind.INVALID_URL, "empty URL")
    scheme = SCHEME.match(url)
    if not scheme or not url[scheme.end():].startswith("//"):
        raise InvalidItemError(ErrorKind.INVALID_URL, f"no scheme in {_short(url)} "
                                                      "(expected http:// or https://)")
    if scheme.group(1).lower() not in DEFAULT_PORTS:
        raise InvalidItemError(ErrorKind.INVALID_URL,
                               f"unsupported scheme {scheme.group(1)!r} in {_short(url)} "
                               "(expected http or https)")
    try:
        parsed = parse_url(url)
    except LocationParseError as exc:
        reason = mask_line(str(exc).replace("Failed to parse: ", ""))
        raise InvalidItemError(ErrorKind.INVALID_URL, f"cannot parse {_short(url)}: {reason}")
    if not parsed.host:
        raise InvalidItemError(ErrorKind.INVALID_URL, f"no host in {_short(url)}")
    return url


def _short(url: str, limit: int = 120) -> str:
    """A URL as a message shows it: quoted, cut, and any password in it masked."""
    url = mask_line(url)
    return repr(url if len(url) <= limit else url[:limit] + "...")


def _merge_headers(base: Mapping[str, str], override: Mapping[str, str]) -> dict[str, str]:
    """Merge case-insensitively; ``override`` wins."""
    merged = dict(base)
    for name, value in override.items():
        for existing in [key for key in merged if key.lower() == name.lower()]:
            del merged[existing]
        merged[name] = value
    return merged


def _pairs(params: Any) -> list[tuple[Any, Any]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        return list(params.items())
    return [tuple(pair) for pair in params]


def _merge_params(base: Any, override: Any) -> Any:
    """Item params win key by key; a key the item sets drops all of the run's values."""
    if not override:
        return base or None
    if not base:
        return override
    own = _pairs(override)
    keys = {key for key, _ in own}
    return [pair for pair in _pairs(base) if pair[0] not in keys] + own


def _mapping(item: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidItemError(ErrorKind.INVALID_REQUEST,
                               f"{key!r} must be an object of names to values, got {value!r}")
    return value


def describe_item(item: Any) -> str:
    """What to put in the url column of a row whose item is unusable."""
    if isinstance(item, str):
        return item
    if isinstance(item, RequestSpec):
        return item.url if isinstance(item.url, str) else repr(item.url)
    if isinstance(item, Mapping) and isinstance(item.get("url"), str):
        return item["url"]
    text = repr(item)
    return text if len(text) <= 200 else text[:197] + "..."


def item_method(item: Any, default: str) -> str:
    """The method an item names (upper-cased, as given), else ``default``: for error rows."""
    if isinstance(item, RequestSpec):
        method = item.method
    elif isinstance(item, Mapping):
        method = item.get("method")
    else:
        method = None
    return (method if isinstance(method, str) and method else default).upper()


def item_id(item: Any) -> Any:
    """The caller's ``id`` of an item, when it has one."""
    if isinstance(item, RequestSpec):
        return item.id
    if isinstance(item, Mapping):
        return item.get("id")
    return None


def error_row(index: int, item: Any, default_method: str, error: str,
              message: str) -> FetchResult:
    """The row of an item that has no answer to show: its URL as given (any password
    masked), its id and method, the error kind and the message.

    Example::

        >>> error_row(3, {"url": "x", "id": 7}, "GET", "invalid_url", "no scheme").id
        7
    """
    return FetchResult(index=index, url=mask_line(describe_item(item)), id=item_id(item),
                       method=item_method(item, default_method), error=error, message=message)


def request_hash(spec: RequestSpec) -> str:
    """What ``spec`` sends beyond its method and URL (params, then the body), as 16 hex
    digits of a SHA-256 (the row's ``request_hash``); ``""`` when it sends neither. Two
    specs that send the same params and body have the same hash in any run, whatever the
    multipart boundary: ``since`` matches a previous run's rows by method, URL and this.

    Example::

        >>> request_hash(RequestSpec("http://127.0.0.1/"))
        ''
        >>> one = RequestSpec("http://127.0.0.1/", json={"a": 1, "b": 2})
        >>> request_hash(one) == request_hash(RequestSpec(one.url, json={"b": 2, "a": 1}))
        True
    """
    if spec.params is None and spec.json is None and spec.data is None and spec.files is None:
        return ""  # a plain GET, on every row of most runs
    try:
        params = _pairs(spec.params) or None
    except (TypeError, ValueError):  # not pairs: the request fails, its row says why
        params = spec.params
    parts = (("params", params), ("json", spec.json), ("data", spec.data),
             ("files", spec.files))
    if all(value is None for _, value in parts):
        return ""
    digest = hashlib.sha256()
    for name, value in parts:
        if value is not None:
            digest.update(b"%s\0%s\0" % (name.encode(), _canonical(value)))
    return digest.hexdigest()[:16]


def _canonical(value: Any) -> bytes:
    """The bytes a request value hashes as: bytes and text as they are, the rest as JSON
    with sorted keys."""
    if isinstance(value, (bytes, bytearray)):
        return b"b" + bytes(value)
    if isinstance(value, str):
        return b"s" + value.encode("utf-8", "surrogatepass")
    try:
        text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=_json_default)
    except TypeError:  # keys of mixed types do not sort
        text = repr(value)
    return b"j" + text.encode("utf-8", "surrogatepass")


def _json_default(value: Any) -> Any:
    return value.hex() if isinstance(value, (bytes, bytearray)) else repr(value)


def to_spec(item: Any, options: FetchOptions) -> RequestSpec:
    """Validate one input item and merge it over the run's options (and its host's, with
    ``hosts``: their headers and auth's Authorization, which an item's own headers override).

    ``item`` is a URL string, a dict with :data:`SPEC_KEYS`, or a :class:`RequestSpec`.
    Returns a RequestSpec with everything resolved (method, headers, params, body).
    Raises :class:`InvalidItemError` with kind ``invalid_url`` or ``invalid_request``.

    Example::

        >>> spec = to_spec({"url": "http://127.0.0.1/rpc", "method": "post", "json": [1]},
        ...                FetchOptions(headers={"X-Token": "t"}))
        >>> spec.method, spec.headers, spec.json
        ('POST', {'X-Token': 't'}, [1])
    """
    if isinstance(item, str):
        fields: Mapping[str, Any] = {"url": item}
    elif isinstance(item, RequestSpec):
        fields = {field.name: getattr(item, field.name) for field in dataclasses.fields(item)}
    elif isinstance(item, Mapping):
        unknown = sorted(str(key) for key in item if key not in SPEC_KEYS)
        if unknown:
            raise InvalidItemError(ErrorKind.INVALID_REQUEST,
                                   f"unknown key(s) {', '.join(unknown)}; "
                                   f"allowed: {', '.join(sorted(SPEC_KEYS))}")
        if item.get("url") is None:
            raise InvalidItemError(ErrorKind.INVALID_REQUEST, "request spec has no 'url'")
        fields = item
    else:
        raise InvalidItemError(ErrorKind.INVALID_REQUEST,
                               f"an item must be a URL string, a dict or a "
                               f"RequestSpec, got {type(item).__name__}")
    url = check_url(fields["url"])
    method = fields.get("method") or options.method
    try:
        method = normalize_method(method)
    except ValueError as exc:
        raise InvalidItemError(ErrorKind.INVALID_REQUEST,
                               f"unknown method {method!r}: expected {exc}")
    if fields.get("json") is not None and fields.get("data") is not None:
        raise InvalidItemError(ErrorKind.INVALID_REQUEST,
                               "an item may have 'json' or 'data', not both")
    if fields.get("json") is not None and fields.get("files") is not None:
        raise InvalidItemError(ErrorKind.INVALID_REQUEST,
                               "an item may have 'json' or 'files', not both")
    params = fields.get("params")
    if params is not None and not isinstance(params, (Mapping, list, tuple)):
        raise InvalidItemError(ErrorKind.INVALID_REQUEST,
                               f"'params' must be an object or a list of pairs, got {params!r}")
    has_body = (fields.get("json") is not None or fields.get("data") is not None
                or fields.get("files") is not None)
    own_headers, own_cookies = _mapping(fields, "headers"), _mapping(fields, "cookies")
    if own_headers or own_cookies or fields.get("data") is not None:  # a plain URL has none
        problem = (first_header_problem(own_headers, allow_none=True)
                   or first_cookie_problem(own_cookies) or form_problem(fields.get("data")))
        if problem:
            raise InvalidItemError(ErrorKind.INVALID_REQUEST, problem)
    json = fields.get("json") if has_body else options.json
    data = fields.get("data") if has_body else options.data
    if not has_body:
        files = options.multipart  # read once, when the options were made
    elif fields.get("files") is not None:
        try:
            files = multipart_parts(fields["files"], contained=True)
        except ValueError as exc:
            raise InvalidItemError(ErrorKind.INVALID_REQUEST, str(exc)) from None
    else:
        files = None
    headers = options.headers
    if options.hosts is not None:  # the host's headers, over the run's and under the item's
        rule = options.hosts.for_url(url)
        if rule is not None and rule.request_headers:
            headers = _merge_headers(headers, rule.request_headers)
    headers = _merge_headers(headers, own_headers)
    if isinstance(data, (str, bytes)) and json is None and files is None and not any(
            name.lower() == "content-type" for name in headers):
        # What curl's -d sends; requests would send a str body with no Content-Type at all.
        headers["Content-Type"] = FORM_CONTENT_TYPE
    return RequestSpec(
        url=url,
        method=method,
        headers=headers,
        params=_merge_params(options.params, params),
        json=json,
        data=data,
        files=files,
        cookies={**options.cookies, **own_cookies},
        id=fields.get("id"),
    )

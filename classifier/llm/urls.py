"""Server URLs as the command lines take them and as messages show them.

Kept apart from the server backend so that a command can print a URL without importing
the OpenAI client.
"""
from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError

URL_FORM = "http://host:port/v1"


def normalise_url(url: str) -> str:
    """`http://h:p`, `http://h:p/` and `http://h:p/v1/` all mean `http://h:p/v1`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"server URL {url!r} is not an http(s) URL; expected the form {URL_FORM}"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/v1"):
        path += "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def redacted(url: str) -> str:
    """`http://user:secret@host:8000/v1` -> `http://***@host:8000/v1`; other URLs unchanged."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))

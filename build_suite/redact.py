"""Hide credentials in text before it is shown or written.

Every line that comes from pip or another tool passes through `redact` or a
`Redactor` first, because index URLs often carry a user and password or a token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote, urlsplit

MASK = "****"

# The user-info part of a URL: everything between "scheme://" and the last "@"
# before the host, so a password with an unencoded "@" is masked whole.
# Whitespace, "/" and quotes end a URL in log text.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/'\"<>]+)@")

# Environment variables whose values may be URLs with credentials (pip's index
# options and the common proxy variables).
URL_ENV_VARS = (
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_FIND_LINKS",
    "PIP_PROXY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)

# Secrets shorter than this are not masked as bare strings, because masking
# every "a" or "ab" in the output would make the log unreadable. URL user-info
# is still masked whatever its length.
MIN_SECRET_LENGTH = 4


def redact(text: str) -> str:
    """Replace the user-info of every URL in `text` with ****.

    `https://user:pass@host/` and `https://TOKEN@host/` both become
    `https://****@host/`.
    """
    return _URL_USERINFO.sub(lambda match: match.group("scheme") + MASK + "@", text)


def secrets_in_url(url: str) -> list[str]:
    """Return the password and user token found in `url`, raw and percent-decoded."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return []
    found: list[str] = []
    for value in (parts.password, parts.username):
        if value:
            found.append(value)
            decoded = unquote(value)
            if decoded != value:
                found.append(decoded)
    return found


class Redactor:
    """A callable that masks URL user-info and a set of known secret strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for secret in secrets:
            self.add(secret)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None, extra_urls: Iterable[str] = ()) -> Redactor:
        """Build a redactor that masks the credentials found in the URL variables of `environ` and in `extra_urls`."""
        import os

        environ = os.environ if environ is None else environ
        redactor = cls()
        urls = [environ[name] for name in URL_ENV_VARS if environ.get(name)]
        urls.extend(extra_urls)
        for value in urls:
            # pip accepts several space-separated URLs in one variable.
            for url in value.split():
                redactor.add_url(url)
        return redactor

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def add(self, secret: str) -> None:
        """Mask `secret` wherever it appears, unless it is shorter than MIN_SECRET_LENGTH."""
        if secret and len(secret) >= MIN_SECRET_LENGTH:
            self._secrets.add(secret)

    def add_url(self, url: str) -> None:
        """Mask the user and password of `url` wherever they appear."""
        for secret in secrets_in_url(url):
            self.add(secret)

    def redact(self, text: str) -> str:
        """Mask URL user-info first, then every known secret, longest first."""
        text = redact(text)
        # Sorted by length, longest first, so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    __call__ = redact

"""Tests of credential masking in URLs and free text."""

from __future__ import annotations

import pytest

from build_suite.redact import MASK, Redactor, redact, secrets_in_url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://alice:s3cret@index.example/simple", "https://****@index.example/simple"),
        ("https://TOKEN123@index.example/simple/", "https://****@index.example/simple/"),
        ("git+https://user:p%40ss@git.example/repo.git", "git+https://****@git.example/repo.git"),
        ("Looking in indexes: https://u:p@a.example/s, https://v:q@b.example/s",
         "Looking in indexes: https://****@a.example/s, https://****@b.example/s"),
        ("https://user:p@ss@idx.example/simple", "https://****@idx.example/simple"),
        ("https://idx.example/simple?owner=a@b.example", "https://idx.example/simple?owner=a@b.example"),
        ("http://127.0.0.1:8080/simple", "http://127.0.0.1:8080/simple"),
        ("mail alice@example.org about it", "mail alice@example.org about it"),
        ("no url here", "no url here"),
    ],
)
def test_redact_masks_url_userinfo(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_keeps_host_and_path() -> None:
    masked = redact("Downloading https://me:pw@idx.example:8443/packages/six-1.17.0-py2.py3-none-any.whl")
    assert masked == "Downloading https://****@idx.example:8443/packages/six-1.17.0-py2.py3-none-any.whl"


def test_secrets_in_url_returns_raw_and_decoded() -> None:
    found = secrets_in_url("https://deploy-user:pa%3Ass@idx.example/simple")
    assert "pa%3Ass" in found
    assert "pa:ss" in found
    assert "deploy-user" in found


def test_secrets_in_url_without_credentials() -> None:
    assert secrets_in_url("https://idx.example/simple") == []


def test_redactor_masks_bare_secret() -> None:
    redactor = Redactor(["hunter22"])
    assert redactor("authentication with hunter22 failed") == f"authentication with {MASK} failed"


def test_redactor_ignores_very_short_secret() -> None:
    redactor = Redactor(["ab"])
    assert redactor("a table") == "a table"
    assert redactor.secrets == frozenset()


def test_redactor_masks_longest_secret_first() -> None:
    redactor = Redactor(["secret", "secret-extended"])
    assert redactor("value secret-extended") == f"value {MASK}"


def test_redactor_from_environ_reads_index_urls() -> None:
    environ = {
        "PIP_INDEX_URL": "https://ci-bot:t0ken%2Fvalue@idx.example/simple",
        "PIP_EXTRA_INDEX_URL": "https://first.example/simple https://__token__:pypi-abcdef@second.example/simple",
        "HOME": "/home/nobody",
    }
    redactor = Redactor.from_environ(environ)
    assert redactor("prompt for t0ken/value") == f"prompt for {MASK}"
    assert redactor("echo t0ken%2Fvalue") == f"echo {MASK}"
    assert redactor("key pypi-abcdef leaked") == f"key {MASK} leaked"
    assert redactor("user ci-bot") == f"user {MASK}"
    assert redactor("home /home/nobody") == "home /home/nobody"


def test_redactor_masks_urls_and_secrets_together() -> None:
    redactor = Redactor(["topsecret"])
    masked = redactor("https://x:topsecret@h.example/ then topsecret")
    assert masked == f"https://{MASK}@h.example/ then {MASK}"


def test_redactor_extra_urls() -> None:
    redactor = Redactor.from_environ({}, extra_urls=["https://builder:letmein@idx.example/simple"])
    assert redactor("password letmein") == f"password {MASK}"

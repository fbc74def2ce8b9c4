"""Tests of the built-image checks: non-root user and no secrets in ENV, labels or build history."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from build_suite.security import imagecheck
from build_suite.security.imagecheck import Finding, check_image, format_finding

BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"

# Made-up values. The access key has the shape of an AWS access key ID.
FAKE_ACCESS_KEY = "AKIA" + "ZQ3DRSTUVWXY7QJM"
FAKE_PASSWORD = "not-a-real-pw-4711"
FAKE_BUILD_PASSWORD = "build-time-pw-0815"
FAKE_INDEX_URL = "https://builder:index-pw-2231@index.example.invalid/simple"

PYTHON_IMAGE_ENV = [
    "PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG=C.UTF-8",
    "GPG_KEY=A035C8C19219BA821ECEA86B64E628F8D684696D",
    "PYTHON_VERSION=3.11.7",
    "TOKENIZERS_PARALLELISM=false",
    "PYTHON_SHA256=c2ea7bcd0ee2d5ef9e8fd0c9b4b4e1c2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8",
    "GIT_COMMIT=3ccb612573e2511ab5cad7dafecd838605c80cda",
]


def _attrs(user: str | None = "1000", env: list[str] | None = None, labels: dict | None = None) -> dict:
    return {
        "Id": "sha256:" + "ab" * 32,
        "RepoTags": ["localhost/shop/api:1.0"],
        "Config": {"User": user, "Env": env if env is not None else list(PYTHON_IMAGE_ENV), "Labels": labels},
    }


def _names(findings: list[Finding], kind: str) -> list[str]:
    return sorted(finding.name for finding in findings if finding.kind == kind)


@pytest.mark.parametrize("user", [None, "", "  ", "root", "0", "0:0", "root:root", "root:1000"])
def test_root_user_reported(user: str | None) -> None:
    findings = check_image(_attrs(user=user))

    assert [finding.kind for finding in findings] == ["root-user"]
    assert findings[0].image == "localhost/shop/api:1.0"


@pytest.mark.parametrize("user", ["1000", "1000:1000", "app", "app:0", "nobody"])
def test_non_root_user_accepted(user: str) -> None:
    assert check_image(_attrs(user=user)) == []


def test_plain_python_env_is_clean() -> None:
    assert check_image(_attrs()) == []


def test_env_secrets_named_not_shown() -> None:
    env = [
        *PYTHON_IMAGE_ENV,
        f"DB_PASSWORD={FAKE_PASSWORD}",
        f"UPLOAD_ID={FAKE_ACCESS_KEY}",
        f"PIP_INDEX_URL={FAKE_INDEX_URL}",
        "EMPTY_TOKEN=",
    ]

    findings = check_image(_attrs(env=env), image="api")

    assert _names(findings, "env") == ["DB_PASSWORD", "PIP_INDEX_URL", "UPLOAD_ID"]
    reasons = {finding.name: finding.reason for finding in findings}
    assert reasons["UPLOAD_ID"] == "AWS Access Key"
    assert reasons["PIP_INDEX_URL"] == "Basic Auth Credentials"
    assert reasons["DB_PASSWORD"] == "name suggests a credential"
    for finding in findings:
        text = format_finding(finding) + repr(finding)
        assert finding.image == "api"
        for value in (FAKE_PASSWORD, FAKE_ACCESS_KEY, FAKE_INDEX_URL, "index-pw-2231"):
            assert value not in text


def test_label_secret_reported() -> None:
    labels = {
        "org.opencontainers.image.source": "https://example.invalid/shop",
        "org.opencontainers.image.revision": "3ccb612573e2511ab5cad7dafecd838605c80cda",
        "svc.apiKey": "k-12345",
    }

    findings = check_image(_attrs(labels=labels))

    assert _names(findings, "label") == ["svc.apiKey"]
    assert format_finding(findings[0]) == (
        "localhost/shop/api:1.0: LABEL svc.apiKey looks like a secret (name suggests a credential)"
    )


def test_history_build_args_reported() -> None:
    history = [
        {"CreatedBy": f"|2 DB_PASSWORD={FAKE_BUILD_PASSWORD} HTTP_PROXY=http://127.0.0.1:3128 /bin/sh -c make"},
        {"CreatedBy": "/bin/sh -c #(nop) ARG DB_PASSWORD"},
        {"CreatedBy": "ARG SIGNING_KEY=k-0001"},
        {"CreatedBy": f"RUN |1 API_TOKEN={FAKE_ACCESS_KEY} /bin/sh -c true"},
    ]

    findings = check_image(_attrs(), history)

    assert _names(findings, "build-arg") == ["API_TOKEN", "DB_PASSWORD", "SIGNING_KEY"]
    for finding in findings:
        assert FAKE_BUILD_PASSWORD not in format_finding(finding)


def test_history_env_overridden_later() -> None:
    history = [
        {"CreatedBy": "/bin/sh -c #(nop) ENV APP_SECRET=s-3344 MODE=prod"},
        {"CreatedBy": "/bin/sh -c #(nop) ENV OLD_TOKEN t-9988"},
    ]

    findings = check_image(_attrs(), history)

    assert _names(findings, "env") == ["APP_SECRET", "OLD_TOKEN"]


def test_hex_value_reported_unless_digest() -> None:
    env = [*PYTHON_IMAGE_ENV, "UPLOAD_SALT=3ccb612573e2511ab5cad7dafecd838605c80cda", "BUILD_MD5=not-hex-zz9f"]

    findings = check_image(_attrs(env=env))

    assert _names(findings, "env") == ["UPLOAD_SALT"]
    assert findings[0].reason == "Hex High Entropy String"


def test_allowed_names_skipped() -> None:
    env = [*PYTHON_IMAGE_ENV, "CACHE_KEY=v2"]

    assert _names(check_image(_attrs(env=env)), "env") == ["CACHE_KEY"]
    assert check_image(_attrs(env=env), allowed_names=imagecheck.DEFAULT_ALLOWED_NAMES | {"CACHE_KEY"}) == []


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("DB_PASSWORD", True),
        ("apiKey", True),
        ("GITHUB_TOKEN", True),
        ("AWS_SECRET_ACCESS_KEY", True),
        ("client_secrets", True),
        ("KEYBOARD_LAYOUT", False),
        ("TOKENIZERS_PARALLELISM", False),
        ("PASSWORD_FILE", False),
        ("SECRET_NAME", False),
        ("TOKEN_URL", False),
        ("LANG", False),
    ],
)
def test_credential_name_heuristic(name: str, expected: bool) -> None:
    assert imagecheck.looks_like_credential_name(name) is expected


def test_image_named_by_id_without_tags() -> None:
    attrs = _attrs(user="root")
    attrs["RepoTags"] = []

    assert check_image(attrs)[0].image == attrs["Id"]


@pytest.mark.slow
def test_real_image_checked(tmp_path: Path) -> None:
    from build_suite.engine import connect_engine

    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\n"
        "ARG DB_PASSWORD\n"
        f"ENV API_TOKEN={FAKE_PASSWORD} APP_MODE=demo\n"
        "LABEL shop.signing_key=k-7781\n"
        "RUN echo built > /tmp/built\n"
    )
    tag = f"localhost/build-suite-test/imagecheck:{uuid.uuid4().hex[:12]}"
    connection = connect_engine()
    image = None
    try:
        image, _ = connection.client.images.build(
            path=str(context),
            tag=tag,
            labels={"build-suite.test": "security-imagecheck"},
            buildargs={"DB_PASSWORD": FAKE_BUILD_PASSWORD},
            rm=True,
        )
        findings = imagecheck.check_engine_image(connection.client, tag)
    finally:
        if image is not None:
            connection.client.images.remove(image.id, force=True)
        connection.close()

    assert [finding.kind for finding in findings if finding.kind == "root-user"] == ["root-user"]
    assert _names(findings, "env") == ["API_TOKEN"]
    assert _names(findings, "label") == ["shop.signing_key"]
    assert _names(findings, "build-arg") == ["DB_PASSWORD"]
    for finding in findings:
        assert finding.image == tag
        assert FAKE_PASSWORD not in format_finding(finding)
        assert FAKE_BUILD_PASSWORD not in format_finding(finding)

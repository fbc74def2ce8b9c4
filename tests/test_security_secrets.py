"""Tests of the build-context secret scan."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from build_suite.dockerignore import context_files
from build_suite.security import SecurityError
from build_suite.security.secrets import (
    Finding,
    baseline_json,
    filter_accepted,
    format_finding,
    load_baseline,
    scan_context,
    scan_files,
    undecodable_files,
)

# A made-up value in the shape of an AWS access key ID: "AKIA" and 16 more
# upper-case letters or digits. It belongs to no account.
FAKE_ACCESS_KEY = "AKIA" + "ZQ3DRSTUVWXY7QJM"


@pytest.fixture
def context(tmp_path: Path) -> Path:
    root = tmp_path / "context"
    (root / "app").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY app /app\n")
    (root / "app" / "main.py").write_text("print('hello')\n")
    (root / "app" / "settings.py").write_text(
        f"DEBUG = False\nREGION = 'eu-west-1'\nAWS_ACCESS_KEY_ID = '{FAKE_ACCESS_KEY}'\n"
    )
    return root


def _aws_findings(findings: list[Finding]) -> list[Finding]:
    return [finding for finding in findings if finding.kind == "AWS Access Key"]


def test_planted_key_found_with_location(context: Path) -> None:
    findings = scan_context(context, context / "Dockerfile")

    aws = _aws_findings(findings)
    assert len(aws) == 1
    assert aws[0].file == "app/settings.py"
    assert aws[0].line == 3


def test_finding_text_hides_value(context: Path) -> None:
    findings = scan_context(context, context / "Dockerfile")

    assert findings
    for finding in findings:
        assert FAKE_ACCESS_KEY not in repr(finding)
        assert FAKE_ACCESS_KEY not in str(finding)
        assert FAKE_ACCESS_KEY not in format_finding(finding)
        assert FAKE_ACCESS_KEY not in finding.describe()
    assert format_finding(_aws_findings(findings)[0]) == "app/settings.py:3: possible secret (AWS Access Key)"


def test_dockerignored_file_not_scanned(context: Path) -> None:
    (context / ".dockerignore").write_text("app/settings.py\n")

    files = context_files(context, context / "Dockerfile")
    assert "app/settings.py" not in files
    assert "app/main.py" in files

    assert scan_context(context, context / "Dockerfile") == []
    assert scan_files(context, files) == []


def test_scan_files_reads_only_listed(context: Path) -> None:
    assert scan_files(context, ["app/main.py"]) == []
    assert len(_aws_findings(scan_files(context, ["app/main.py", "app/settings.py"]))) == 1


def test_symlink_in_context_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(f"key = '{FAKE_ACCESS_KEY}'\n")
    context = tmp_path / "context"
    context.mkdir()
    (context / "link.txt").symlink_to(outside)

    assert scan_files(context, ["link.txt"]) == []


def test_missing_listed_file_skipped(context: Path) -> None:
    assert scan_files(context, ["gone.py"]) == []


def test_undecodable_file_listed(context: Path) -> None:
    (context / "app" / "legacy.cfg").write_bytes(b"# caf\xe9\n" + f"key = '{FAKE_ACCESS_KEY}'\n".encode())
    (context / "app" / "logo.png").write_bytes(bytes(range(256)))

    files = context_files(context, context / "Dockerfile")

    assert undecodable_files(context, files) == ["app/legacy.cfg", "app/logo.png"]


def test_baseline_accepts_known_finding(context: Path, tmp_path: Path) -> None:
    findings = scan_context(context, context / "Dockerfile")
    baseline_path = tmp_path / "secrets-baseline.json"
    baseline_path.write_text(baseline_json(findings))

    assert FAKE_ACCESS_KEY not in baseline_path.read_text()
    assert filter_accepted(findings, load_baseline(baseline_path)) == []


def test_baseline_line_must_match(context: Path, tmp_path: Path) -> None:
    finding = _aws_findings(scan_context(context, context / "Dockerfile"))[0]
    entry = {"file": finding.file, "line": finding.line + 1, "kind": finding.kind, "hash": finding.secret_hash}
    baseline_path = tmp_path / "baseline.json"
    baseline_path.write_text(json.dumps([entry]))

    assert filter_accepted([finding], load_baseline(baseline_path)) == [finding]


def test_baseline_without_line_matches_any(context: Path, tmp_path: Path) -> None:
    finding = _aws_findings(scan_context(context, context / "Dockerfile"))[0]
    entry = {"file": finding.file, "kind": finding.kind, "hash": finding.secret_hash}
    baseline_path = tmp_path / "baseline.json"
    baseline_path.write_text(json.dumps([entry]))

    assert filter_accepted([finding], load_baseline(baseline_path)) == []


def test_baseline_other_secret_not_accepted(context: Path, tmp_path: Path) -> None:
    finding = _aws_findings(scan_context(context, context / "Dockerfile"))[0]
    entry = {"file": finding.file, "line": finding.line, "kind": finding.kind, "hash": "0" * 40}
    baseline_path = tmp_path / "baseline.json"
    baseline_path.write_text(json.dumps([entry]))

    assert filter_accepted([finding], load_baseline(baseline_path)) == [finding]


def test_detect_secrets_baseline_format(context: Path, tmp_path: Path) -> None:
    finding = _aws_findings(scan_context(context, context / "Dockerfile"))[0]
    baseline = {
        "version": "1.5.0",
        "plugins_used": [],
        "filters_used": [],
        "results": {
            "app/settings.py": [
                {
                    "type": "AWS Access Key",
                    "filename": "app/settings.py",
                    "hashed_secret": finding.secret_hash,
                    "is_verified": False,
                    "line_number": 3,
                }
            ]
        },
        "generated_at": "2026-01-01T00:00:00Z",
    }
    baseline_path = tmp_path / ".secrets.baseline"
    baseline_path.write_text(json.dumps(baseline))

    assert filter_accepted([finding], load_baseline(baseline_path)) == []


@pytest.mark.parametrize(
    "text",
    ["not json", '{"no_results": 1}', '[{"file": "a"}]', "42"],
    ids=["not-json", "unknown-object", "entry-missing-keys", "number"],
)
def test_invalid_baseline_rejected(tmp_path: Path, text: str) -> None:
    baseline_path = tmp_path / "baseline.json"
    baseline_path.write_text(text)

    with pytest.raises(SecurityError) as raised:
        load_baseline(baseline_path)
    assert str(baseline_path) in raised.value.message


def test_missing_baseline_rejected(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="not found"):
        load_baseline(tmp_path / "absent.json")

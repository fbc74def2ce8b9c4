"""Tests of the OSV vulnerability check, offline and against a loopback OSV API."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from build_suite.security import SecurityError, osv

REAL_DB = Path(__file__).resolve().parents[1].parent / "shared" / "advisory-db" / "pypa"

# CVE-2023-32681 / GHSA-j8r2-6x86-q33q as published: requests from 2.3.0 up to
# 2.31.0 (fixed) leaks Proxy-Authorization headers when redirected to HTTPS.
REQUESTS_ADVISORY = """\
id: PYSEC-2023-74
summary: Requests leaks Proxy-Authorization headers on redirects to HTTPS
details: Since Requests 2.3.0, Requests has been leaking Proxy-Authorization headers.
affected:
- package:
    name: requests
    ecosystem: PyPI
    purl: pkg:pypi/requests
  ranges:
  - type: GIT
    repo: https://github.com/psf/requests
    events:
    - introduced: "0"
    - fixed: 74ea7cf7a6a27a4eeb2ae24e162bcc942a6706d5
  - type: ECOSYSTEM
    events:
    - introduced: 2.3.0
    - fixed: 2.31.0
aliases:
- CVE-2023-32681
- GHSA-j8r2-6x86-q33q
modified: "2023-06-05T01:13:00.534973Z"
published: "2023-05-26T18:15:00Z"
"""

# Made-up records that exercise the other parts of the schema.
CVSS_RECORD = {
    "id": "TEST-2024-1",
    "modified": "2024-03-01T00:00:00Z",
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    "affected": [
        {
            "package": {"name": "Some_Package", "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"last_affected": "1.4"}]}],
        }
    ],
}
MODERATE_RECORD = {
    "id": "TEST-2024-2",
    "modified": "2024-02-01T00:00:00Z",
    "database_specific": {"severity": "MODERATE"},
    "affected": [
        {
            "package": {"name": "listed-only", "ecosystem": "PyPI"},
            "versions": ["0.9", "1.0.0"],
        }
    ],
}
TWO_RANGES_RECORD = {
    "id": "TEST-2024-3",
    "modified": "2024-01-01T00:00:00Z",
    "affected": [
        {
            "package": {"name": "two-ranges", "ecosystem": "PyPI"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "3.0"}, {"fixed": "4.0"}, {"introduced": "1.0"}, {"fixed": "2.0"}],
                }
            ],
        },
        {
            "package": {"name": "two-ranges", "ecosystem": "npm"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
        },
    ],
}
WITHDRAWN_RECORD = {
    "id": "TEST-2024-4",
    "modified": "2025-01-01T00:00:00Z",
    "withdrawn": "2025-01-02T00:00:00Z",
    "affected": [
        {
            "package": {"name": "requests", "ecosystem": "PyPI"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
        }
    ],
}


@pytest.fixture
def database(tmp_path: Path) -> Path:
    root = tmp_path / "advisories"
    (root / "vulns" / "requests").mkdir(parents=True)
    (root / "vulns" / "requests" / "PYSEC-2023-74.yaml").write_text(REQUESTS_ADVISORY)
    nested = root / "more" / "deeper"
    nested.mkdir(parents=True)
    (nested / "TEST-2024-1.json").write_text(json.dumps(CVSS_RECORD))
    (nested / "TEST-2024-2.json").write_text(json.dumps(MODERATE_RECORD))
    (root / "TEST-2024-3.yml").write_text(json.dumps(TWO_RANGES_RECORD))
    (root / "TEST-2024-4.json").write_text(json.dumps(WITHDRAWN_RECORD))
    (root / "broken.yaml").write_text("id: [unclosed\n")
    (root / "README.json").write_text('{"title": "not an advisory"}')
    return root


def _ids(result: osv.ScanResult) -> list[tuple[str, str, str]]:
    return [(item.package, item.version, item.advisory_id) for item in result.vulnerabilities]


def test_old_requests_found_offline(database: Path) -> None:
    result = osv.check_offline([("requests", "2.30.0")], database)

    assert result.status == "checked"
    assert result.source == "offline"
    assert _ids(result) == [("requests", "2.30.0", "PYSEC-2023-74")]
    vulnerability = result.vulnerabilities[0]
    assert vulnerability.aliases == ("CVE-2023-32681", "GHSA-j8r2-6x86-q33q")
    assert vulnerability.fixed_versions == ("2.31.0",)
    assert vulnerability.severity == osv.UNKNOWN


def test_fixed_requests_not_found(database: Path) -> None:
    result = osv.check_offline([("requests", "2.31.0"), ("requests", "2.2.1")], database)

    assert result.status == "checked"
    assert result.vulnerabilities == ()
    assert osv.verdict(result) == "pass"


def test_removed_db_is_unavailable(database: Path) -> None:
    osv.load_index(database)
    shutil.rmtree(database)

    result = osv.check_offline([("requests", "2.30.0")], database)

    assert result.status == "unavailable"
    assert not result.available
    assert str(database.resolve()) in result.reason
    assert osv.verdict(result) == "unavailable"


def test_empty_db_is_unavailable(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.json").write_text("[]")

    result = osv.check_offline([("requests", "2.30.0")], empty)

    assert result.status == "unavailable"
    assert "no OSV records" in result.reason
    assert osv.verdict(result) == "unavailable"


def test_unconfigured_db_is_unavailable() -> None:
    result = osv.check_offline([("requests", "2.30.0")], None)

    assert result.status == "unavailable"
    assert "no OSV database" in result.reason


def test_names_normalised_both_sides(database: Path) -> None:
    result = osv.check_offline([("some.package", "1.4"), ("SOME-PACKAGE", "1.4.1")], database)

    assert _ids(result) == [("some.package", "1.4", "TEST-2024-1")]


def test_last_affected_is_inclusive(database: Path) -> None:
    index = osv.load_index(database)
    entry = index.by_package["some-package"][0].affected[0]

    assert osv.is_affected(entry, "1.4")
    assert osv.is_affected(entry, "1.4.0")
    assert osv.is_affected(entry, "0.1")
    assert not osv.is_affected(entry, "1.4.post1")
    assert not osv.is_affected(entry, "1.5")


def test_unsorted_events_two_ranges(database: Path) -> None:
    index = osv.load_index(database)
    entries = [entry for advisory in index.by_package["two-ranges"] for entry in advisory.affected]

    assert len(entries) == 1, "the npm entry must be left out"
    entry = entries[0]
    assert not osv.is_affected(entry, "0.9")
    assert osv.is_affected(entry, "1.0")
    assert osv.is_affected(entry, "1.9.9")
    assert not osv.is_affected(entry, "2.0")
    assert not osv.is_affected(entry, "2.5")
    assert osv.is_affected(entry, "3.0rc1") is False
    assert osv.is_affected(entry, "3.5")
    assert not osv.is_affected(entry, "4.0")


def test_versions_list_matches_equal_versions(database: Path) -> None:
    result = osv.check_offline([("listed-only", "1.0"), ("listed-only", "1.1")], database)

    assert _ids(result) == [("listed-only", "1.0", "TEST-2024-2")]
    assert result.vulnerabilities[0].severity == "medium"


def test_cvss_vector_sets_severity(database: Path) -> None:
    result = osv.check_offline([("some-package", "1.0")], database)

    vulnerability = result.vulnerabilities[0]
    assert vulnerability.severity == "critical"
    assert vulnerability.score == pytest.approx(9.8)


def test_withdrawn_and_invalid_records_skipped(database: Path) -> None:
    index = osv.load_index(database)

    assert index.record_count == 4
    assert [advisory.id for advisory in index.by_package["requests"]] == ["PYSEC-2023-74"]
    assert sorted(index.invalid_files) == ["README.json", "broken.yaml"]
    assert osv.check_offline([("requests", "1.0")], database).notes == ("2 files are not valid OSV records",)


def test_snapshot_from_config_or_newest(database: Path) -> None:
    assert osv.check_offline([], database).snapshot == "2024-03-01"
    assert osv.check_offline([], database, snapshot_date="2024-10-10").snapshot == "2024-10-10"


def test_threshold_selects_failures(database: Path) -> None:
    packages = [("some-package", "1.0"), ("listed-only", "1.0"), ("requests", "2.30.0")]
    result = osv.check_offline(packages, database)

    def failing_ids(threshold: str, unknown_as: str) -> list[str]:
        return sorted(item.advisory_id for item in osv.failing(result, threshold, unknown_as))

    assert failing_ids("critical", "ignore") == ["TEST-2024-1"]
    assert failing_ids("medium", "ignore") == ["TEST-2024-1", "TEST-2024-2"]
    assert failing_ids("low", "low") == ["PYSEC-2023-74", "TEST-2024-1", "TEST-2024-2"]
    assert failing_ids("high", "medium") == ["TEST-2024-1"]
    assert failing_ids("high", "critical") == ["PYSEC-2023-74", "TEST-2024-1"]


def test_unknown_only_passes_when_ignored(database: Path) -> None:
    result = osv.check_offline([("requests", "2.30.0")], database)

    assert osv.verdict(result, "high", "high") == "fail"
    assert osv.verdict(result, "high", "ignore") == "pass"


def test_invalid_threshold_rejected(database: Path) -> None:
    result = osv.check_offline([("requests", "2.30.0")], database)

    with pytest.raises(SecurityError, match="invalid severity level"):
        osv.failing(result, "severe")
    with pytest.raises(SecurityError, match="invalid severity level"):
        osv.failing(result, "high", "maybe")


def test_index_cached_until_changed(database: Path) -> None:
    first = osv.load_index(database)
    assert osv.load_index(database) is first

    extra = dict(MODERATE_RECORD, id="TEST-2024-9", modified="2024-05-01T00:00:00Z")
    (database / "TEST-2024-9.json").write_text(json.dumps(extra))
    second = osv.load_index(database)

    assert second is not first
    assert second.record_count == first.record_count + 1


def test_format_vulnerability_line(database: Path) -> None:
    result = osv.check_offline([("requests", "2.30.0")], database)

    assert osv.format_vulnerability(result.vulnerabilities[0]) == (
        "requests==2.30.0: PYSEC-2023-74 (CVE-2023-32681, GHSA-j8r2-6x86-q33q), severity unknown, fixed in 2.31.0"
    )


@pytest.mark.skipif(not REAL_DB.is_dir(), reason="the shared PyPA advisory database is not present")
def test_real_db_finds_old_releases() -> None:
    osv.clear_index_cache()
    result = osv.check_offline(
        [("requests", "2.30.0"), ("Django", "3.2.0"), ("requests", "2.32.3"), ("PyYAML", "5.3")], REAL_DB
    )

    assert result.status == "checked"
    ids = {(item.package, item.version, item.advisory_id) for item in result.vulnerabilities}
    assert ("requests", "2.30.0", "PYSEC-2023-74") in ids
    assert any(package == "Django" for package, _, _ in ids)
    assert any(package == "PyYAML" for package, _, _ in ids)
    assert not any(version == "2.32.3" for _, version, _ in ids)
    # The snapshot is the newest `modified` date among the records.
    assert result.snapshot is not None
    assert result.snapshot >= "2024-01-01"
    assert osv.load_index(REAL_DB) is osv.load_index(REAL_DB)


# The online source, against an OSV API that this test serves on loopback.


class _FakeOsvApi(BaseHTTPRequestHandler):
    records = {"TEST-2024-1": CVSS_RECORD}
    queries: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - name fixed by BaseHTTPRequestHandler
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).queries.append(body)
        results = []
        for query in body["queries"]:
            match = query["package"]["name"] == "some-package" and query["version"] == "1.0"
            results.append({"vulns": [{"id": "TEST-2024-1", "modified": "2024-03-01T00:00:00Z"}]} if match else {})
        self._send(200, {"results": results})

    def do_GET(self) -> None:  # noqa: N802
        advisory_id = self.path.rsplit("/", 1)[-1]
        if advisory_id in self.records:
            self._send(200, self.records[advisory_id])
        else:
            self._send(404, {"message": "not found"})

    def _send(self, status: int, payload: object) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Send the loopback requests directly even when a proxy is configured."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def api_url() -> Iterator[str]:
    _FakeOsvApi.queries = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOsvApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_url() -> str:
    # A port that was just free on loopback, so the connection is refused.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_online_query_uses_querybatch(api_url: str) -> None:
    result = osv.check_online([("some-package", "1.0"), ("requests", "2.31.0")], api_url)

    assert result.status == "checked"
    assert result.source == "online"
    assert _ids(result) == [("some-package", "1.0", "TEST-2024-1")]
    assert result.vulnerabilities[0].severity == "critical"
    assert _FakeOsvApi.queries == [
        {
            "queries": [
                {"package": {"name": "some-package", "ecosystem": "PyPI"}, "version": "1.0"},
                {"package": {"name": "requests", "ecosystem": "PyPI"}, "version": "2.31.0"},
            ]
        }
    ]


def test_online_unreachable_is_unavailable(closed_url: str) -> None:
    result = osv.check_online([("requests", "2.30.0")], closed_url, timeout=2)

    assert result.status == "unavailable"
    assert closed_url in result.reason


def test_unreachable_online_falls_back(closed_url: str, database: Path) -> None:
    result = osv.check_packages([("requests", "2.30.0")], database, api_url=closed_url, timeout=2)

    assert result.status == "checked"
    assert result.source == "offline"
    assert _ids(result) == [("requests", "2.30.0", "PYSEC-2023-74")]
    assert any(closed_url in note for note in result.notes)


def test_file_url_rejected(database: Path) -> None:
    result = osv.check_online([("requests", "2.30.0")], database.as_uri())

    assert result.status == "unavailable"
    assert "use http or https" in result.reason


def test_default_is_offline(database: Path) -> None:
    result = osv.check_packages([("requests", "2.30.0")], database)

    assert result.source == "offline"
    assert _ids(result) == [("requests", "2.30.0", "PYSEC-2023-74")]

"""Tests of `--clean`: what it removes, what it keeps, and that it is never silent while the engine works."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from build_suite import clean
from build_suite.clean import PROJECT_LABEL, clean_build
from build_suite.containers import CleanupResult
from stack import BASE_IMAGE

# The client fixture removes what carries this label with this module's name when the module ends.
TEST_LABEL = "build-suite.test"


def project_folders(tmp_path: Path, name: str) -> tuple[SimpleNamespace, Path, Path]:
    """Return a config of project `name` with a filled wheelhouse, and a report folder with a history."""
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    (wheelhouse / "idna-3.10-py3-none-any.whl").write_bytes(b"not a real wheel")
    reports = tmp_path / "reports"
    (reports / "history").mkdir(parents=True)
    (reports / "build.log").write_text("an earlier build\n")
    config = SimpleNamespace(wheelhouse=SimpleNamespace(output=wheelhouse), project=SimpleNamespace(name=name))
    return config, wheelhouse, reports


def test_clean_removes_labelled_and_files(client, tmp_path: Path) -> None:
    name = f"bsclean{uuid.uuid4().hex[:8]}"
    labels = {PROJECT_LABEL: name, TEST_LABEL: "test_clean"}
    client.containers.create(BASE_IMAGE, command=["true"], labels=labels)
    client.networks.create(f"{name}-net", labels=labels)
    config, wheelhouse, reports = project_folders(tmp_path, name)
    lines: list[str] = []

    clean_build(config, reports, lines.append, lines.append)

    label_filter = {"label": f"{PROJECT_LABEL}={name}"}
    assert not wheelhouse.exists()
    assert sorted(path.name for path in reports.iterdir()) == ["history"]
    assert client.containers.list(all=True, filters=label_filter) == []
    assert client.networks.list(filters=label_filter) == []
    assert lines[-1] == f"clean: removed 1 containers, 1 networks and 0 images labelled {PROJECT_LABEL}={name}"


def test_clean_shows_heartbeat_while_engine_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_removal(client, label, *, images=False):
        time.sleep(3.0)
        return CleanupResult()

    monkeypatch.setattr(clean, "connect_engine", lambda: SimpleNamespace(client=None, close=lambda: None))
    monkeypatch.setattr(clean, "remove_labelled", slow_removal)
    config, _, reports = project_folders(tmp_path, "bscleanslow")
    lines: list[str] = []
    statuses: list[str] = []

    clean_build(config, reports, lines.append, statuses.append)

    assert statuses
    assert statuses[0].startswith(f"clean: removing the containers, networks and images labelled {PROJECT_LABEL}=")
    assert lines[-1].startswith("clean: removed 0 containers")

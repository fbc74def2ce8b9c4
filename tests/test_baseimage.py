"""Tests for base images (build_suite.baseimage) and apt source parsing (build_suite.aptsources)."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import uuid
from pathlib import Path

import pytest

from build_suite import baseimage
from build_suite.aptsources import (
    AptSource,
    debian_mirror_lines,
    parse_deb822_sources,
    parse_one_line_sources,
    read_codename,
    read_host_sources,
)
from build_suite.baseimage import (
    BaseImageError,
    ensure_base_image,
    format_pull_event,
    imported_image_id,
    make_base_image,
    mmdebstrap_command,
    package_list,
    run_streaming,
)
from build_suite.engine import EngineUnreachableError, connect_engine

DEFAULT_BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"
TEST_LABEL = {"build-suite.test": "baseimage"}

DEB822 = """\
Types: deb
# a comment inside the stanza
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main contrib
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example/debian
Suites: bookworm
Components: main

Types: deb-src
URIs: http://sources-only.example/debian
Suites: bookworm
Components: main
"""


@pytest.fixture(scope="module")
def client():
    try:
        connection = connect_engine()
    except EngineUnreachableError as error:
        pytest.skip(f"no container engine reachable on this machine: {error.message}")
    yield connection.client
    connection.close()


def _unique_name(purpose: str) -> str:
    return f"localhost/build-suite-test/{purpose}:{uuid.uuid4().hex[:12]}"


def _free_tcp_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _needs_mmdebstrap() -> None:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed; scripts/setup installs it")
    if os.geteuid() != 0:
        pytest.skip("making a root filesystem with mmdebstrap needs root here")


def test_deb822_sources_parse():
    sources = parse_deb822_sources(DEB822)

    assert sources == [
        AptSource("http://mirror.example/debian", "bookworm", ("main", "contrib")),
        AptSource("http://mirror.example/debian", "bookworm-updates", ("main", "contrib")),
        AptSource("http://mirror.example/debian-security", "bookworm-security", ("main",)),
    ]


def test_one_line_sources_parse():
    text = (
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main\n"
        "deb-src http://mirror.example/debian bookworm main\n"
        "deb http://mirror.example/debian-security bookworm-security main non-free-firmware # trailing\n"
    )

    assert parse_one_line_sources(text) == [
        AptSource("http://mirror.example/debian", "bookworm", ("main",)),
        AptSource("http://mirror.example/debian-security", "bookworm-security", ("main", "non-free-firmware")),
    ]


def test_mirror_lines_rewrite_host_release():
    host = ("bookworm", parse_deb822_sources(DEB822) + [AptSource("http://other.example/apt", "stable", ("main",))])

    lines = debian_mirror_lines("trixie", host)

    assert lines == [
        "deb http://mirror.example/debian trixie main contrib",
        "deb http://mirror.example/debian trixie-updates main contrib",
        "deb http://mirror.example/debian-security trixie-security main",
    ]


def test_mirror_lines_for_sid_skip_updates():
    lines = debian_mirror_lines("sid", ("bookworm", parse_deb822_sources(DEB822)))

    assert lines == ["deb http://mirror.example/debian sid main contrib"]


def test_mirror_lines_need_codename():
    assert debian_mirror_lines("trixie", ("", parse_deb822_sources(DEB822))) == []


def test_host_sources_read_from_folder(tmp_path: Path):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    (tmp_path / "sources.list").write_text("deb http://list.example/debian bookworm main\n")
    (tmp_path / "sources.list.d" / "old.list.disabled").write_text("deb http://ignored.example/debian bookworm main\n")
    os_release = tmp_path / "os-release"
    os_release.write_text('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_CODENAME=bookworm\n')

    codename, sources = read_host_sources(tmp_path, os_release)

    assert codename == "bookworm"
    assert [source.uri for source in sources] == [
        "http://list.example/debian",
        "http://mirror.example/debian",
        "http://mirror.example/debian",
        "http://mirror.example/debian-security",
    ]


def test_codename_missing_file(tmp_path: Path):
    assert read_codename(tmp_path / "absent") == ""


def test_package_list_starts_with_python():
    assert package_list(["curl", "python3", "ca-certificates"]) == ("python3", "python3-venv", "curl", "ca-certificates")


def test_package_list_rejects_invalid_name():
    with pytest.raises(BaseImageError) as raised:
        package_list(["curl;rm"])

    assert "curl;rm" in raised.value.message


def test_mmdebstrap_command_shape(tmp_path: Path):
    output = tmp_path / "rootfs.tar"

    command = mmdebstrap_command("trixie", ("python3", "python3-venv", "curl"), output, ["deb http://m.example/d trixie main"])

    assert command == [
        "mmdebstrap",
        "--variant=apt",
        "--include=python3,python3-venv,curl",
        "--format=tar",
        "trixie",
        str(output),
        "deb http://m.example/d trixie main",
    ]


def test_pull_event_lines():
    assert format_pull_event("img:1", {"status": "Downloading", "id": "abc123"}) == "img:1: abc123 Downloading"
    assert format_pull_event("img:1", {"status": "Pulling from x"}) == "img:1: Pulling from x"
    assert format_pull_event("img:1", {"progressDetail": {}}) is None


def test_imported_image_id_from_response():
    response = '{"status":"sha256:da6e8e","progress":"","progressDetail":{},"id":"sha256:da6e8e"}\n'

    assert imported_image_id(response) == "sha256:da6e8e"
    assert imported_image_id(b"not json\n") == ""


def test_streaming_passes_each_line():
    lines: list[str] = []
    script = "import sys\nprint('one', flush=True)\nprint('two', file=sys.stderr, flush=True)\nprint('three')"

    run_streaming([sys.executable, "-c", script], lines.append, 30, name="img", suite="bookworm")

    assert lines == ["img: one", "img: two", "img: three"]


def test_streaming_failure_shows_output_tail():
    script = "print('E: broken mirror'); raise SystemExit(3)"

    with pytest.raises(BaseImageError) as raised:
        run_streaming([sys.executable, "-c", script], lambda line: None, 30, name="img:1", suite="trixie")

    message = raised.value.message
    assert "img:1" in message
    assert "suite trixie" in message
    assert "exit code 3" in message
    assert "E: broken mirror" in message


def test_streaming_timeout_stops_process():
    script = "import time; print('started', flush=True); time.sleep(60)"
    lines: list[str] = []

    with pytest.raises(BaseImageError) as raised:
        run_streaming([sys.executable, "-c", script], lines.append, 1, name="img:1", suite="bookworm")

    assert "timed out after 1 s" in raised.value.message
    assert lines == ["img:1: started"]


def test_invalid_suite_rejected_before_running(client):
    with pytest.raises(BaseImageError) as raised:
        make_base_image(client, "localhost/build-suite-test/x:1", suite="trixie main\ndeb http://x", mirror_lines=["deb x"])

    assert "invalid Debian suite" in raised.value.message
    assert "localhost/build-suite-test/x:1" in raised.value.message


def test_present_image_is_reused(client):
    if baseimage.find_local_image(client, DEFAULT_BASE_IMAGE) is None:
        pytest.skip(f"{DEFAULT_BASE_IMAGE} is not present; scripts/setup makes it")
    lines: list[str] = []

    result = ensure_base_image(client, DEFAULT_BASE_IMAGE, pull=False, make=False, progress=lines.append)

    assert result.outcome == "present"
    assert result.name == DEFAULT_BASE_IMAGE
    assert result.image_id == client.images.get(DEFAULT_BASE_IMAGE).id
    assert lines == []


def test_missing_image_without_pull_or_make(client):
    name = _unique_name("absent")

    with pytest.raises(BaseImageError) as raised:
        ensure_base_image(client, name, pull=False, make=False)

    assert name in raised.value.message
    assert "make = true" in raised.value.hint


def test_failed_pull_reports_progress_and_cause(client):
    # A registry on a free loopback port refuses the connection, so the pull fails fast.
    name = f"localhost:{_free_tcp_port()}/build-suite-test/absent:1"
    lines: list[str] = []

    with pytest.raises(BaseImageError) as raised:
        ensure_base_image(client, name, pull=True, make=False, progress=lines.append)

    assert name in raised.value.message
    assert "could not be pulled" in raised.value.message
    assert lines[0] == f"{name}: not present locally, pulling"
    assert any("pull failed" in line for line in lines)


def test_unknown_suite_names_the_suite(client, tmp_path: Path):
    _needs_mmdebstrap()
    name = _unique_name("unknown-suite")
    lines: list[str] = []

    with pytest.raises(BaseImageError) as raised:
        ensure_base_image(client, name, suite="nosuchsuite", pull=False, progress=lines.append, workdir=tmp_path)

    assert "nosuchsuite" in raised.value.message
    assert name in raised.value.message
    assert any("mmdebstrap" in line for line in lines)
    assert baseimage.find_local_image(client, name) is None


@pytest.mark.slow
def test_make_path_builds_working_python(client, tmp_path: Path):
    _needs_mmdebstrap()
    name = _unique_name("made")
    lines: list[str] = []
    try:
        result = ensure_base_image(
            client, name, suite="bookworm", packages=["ca-certificates"], pull=False,
            progress=lines.append, labels=TEST_LABEL, workdir=tmp_path,
        )

        assert result.outcome == "made"
        assert result.seconds > 0
        image = client.images.get(name)
        assert image.id == result.image_id
        assert image.labels == TEST_LABEL
        assert image.attrs["Config"]["Cmd"] == ["/bin/bash"]
        assert any(line.startswith(f"{name}: I: ") for line in lines)
        assert lines[-1].startswith(f"{name}: importing the root filesystem")
        output = client.containers.run(
            name, ["python3", "-c", "import sys, venv; print(sys.version_info[:2])"],
            remove=True, labels=TEST_LABEL,
        )
        assert output.decode().strip() == "(3, 11)"
        assert list(tmp_path.iterdir()) == []
    finally:
        if baseimage.find_local_image(client, name) is not None:
            client.images.remove(name, force=True)

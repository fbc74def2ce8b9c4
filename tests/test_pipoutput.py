"""Tests of the pip output parser against recorded transcripts and hand-built lines.

The transcripts in tests/transcripts were recorded by tests/transcripts/record.py
from real pip releases; each starts with a header line naming the pip version
and the command.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from build_suite.pipoutput import (
    BuildFailed,
    BuildingWheel,
    BuildingWheels,
    BuildStep,
    Collecting,
    CreatedWheel,
    Downloading,
    DownloadProgress,
    Error,
    ErrorDetail,
    LookingIn,
    Note,
    PipEvent,
    PipOutputParser,
    Processing,
    ResolvedProgress,
    Saved,
    Stored,
    Unknown,
    UsingCached,
    PipWarning,
    package_from_filename,
    parse_line,
    parse_lines,
    parse_size,
    requirement_name,
)
from build_suite.piprunner import LineSplitter, clean_line

TRANSCRIPTS = Path(__file__).resolve().parent / "transcripts"
PIP_VERSIONS = ("23.2.1", "24.0", "24.3.1", "25.3", "26.3")
CASES = ("wheel", "download", "no-binary", "not-found", "build-error", "find-links")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def transcript_events(version: str, case: str) -> list[PipEvent]:
    """Parse a transcript the way run_streaming delivers it: split, cleaned, then parsed."""
    data = (TRANSCRIPTS / f"pip-{version}-{case}.txt").read_bytes()
    header, _, body = data.partition(b"\n")
    assert header.startswith(f"# pip {version} ".encode())
    splitter = LineSplitter()
    lines = [clean_line(line) for line in [*splitter.feed(body), *splitter.close()]]
    return list(parse_lines(line for line in lines if line))


def of_type(events: list[PipEvent], kind: type) -> list:
    return [event for event in events if isinstance(event, kind)]


def test_every_transcript_is_present() -> None:
    for version in PIP_VERSIONS:
        for case in CASES:
            assert (TRANSCRIPTS / f"pip-{version}-{case}.txt").is_file(), (version, case)


@pytest.mark.parametrize("version", PIP_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_transcript_has_no_unknown_lines(version: str, case: str) -> None:
    unknown = of_type(transcript_events(version, case), Unknown)
    assert unknown == []


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_wheel_transcript_collecting(version: str) -> None:
    collecting = of_type(transcript_events(version, "wheel"), Collecting)
    assert [event.name for event in collecting] == ["docopt", "python-dateutil", "six"]

    docopt = collecting[0]
    assert docopt.spec == "docopt==0.6.2"
    assert docopt.parent is None
    assert docopt.requirement_file == "requirements.txt"
    assert docopt.line_number == 1

    six = collecting[2]
    assert six.spec == "six>=1.5"
    assert six.parent == "python-dateutil==2.9.0.post0"
    assert six.requirement_file == "requirements.txt"
    assert six.line_number == 2


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_wheel_transcript_downloads(version: str) -> None:
    downloads = of_type(transcript_events(version, "wheel"), Downloading)
    by_file = {event.filename: event for event in downloads}
    assert set(by_file) == {
        "docopt-0.6.2.tar.gz",
        "python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
        "six-1.17.0-py2.py3-none-any.whl",
    }
    assert by_file["docopt-0.6.2.tar.gz"].size == 25_000
    assert by_file["docopt-0.6.2.tar.gz"].size_text == "25 kB"
    assert by_file["docopt-0.6.2.tar.gz"].package == "docopt"
    assert by_file["python_dateutil-2.9.0.post0-py2.py3-none-any.whl"].package == "python-dateutil"
    assert by_file["six-1.17.0-py2.py3-none-any.whl"].size == 11_000


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_wheel_transcript_builds_docopt(version: str) -> None:
    events = transcript_events(version, "wheel")

    assert of_type(events, BuildingWheels) == [BuildingWheels(names=("docopt",), line=of_type(events, BuildingWheels)[0].line)]
    building = of_type(events, BuildingWheel)
    assert [(event.name, event.backend, event.state) for event in building] == [
        ("docopt", "pyproject.toml", "started"),
        ("docopt", "pyproject.toml", "done"),
    ]

    created = of_type(events, CreatedWheel)
    assert len(created) == 1
    assert created[0].name == "docopt"
    assert created[0].filename == "docopt-0.6.2-py2.py3-none-any.whl"
    assert created[0].size == 13781
    assert SHA256.match(created[0].sha256)

    stored = of_type(events, Stored)
    assert len(stored) == 1
    assert "/cache/wheels/" in stored[0].directory

    summaries = of_type(events, ResolvedProgress)
    assert [(event.kind, event.names) for event in summaries] == [("built", ("docopt",))]


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_wheel_transcript_saved_paths(version: str) -> None:
    saved = of_type(transcript_events(version, "wheel"), Saved)
    assert [event.path for event in saved] == [
        "./wheelhouse/python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
        "./wheelhouse/six-1.17.0-py2.py3-none-any.whl",
    ]
    assert saved[0].filename == "python_dateutil-2.9.0.post0-py2.py3-none-any.whl"
    assert not saved[0].existing


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_wheel_transcript_build_steps(version: str) -> None:
    steps = of_type(transcript_events(version, "wheel"), BuildStep)
    assert [(event.step, event.state) for event in steps] == [
        ("Installing build dependencies", "started"),
        ("Installing build dependencies", "done"),
        ("Getting requirements to build wheel", "started"),
        ("Getting requirements to build wheel", "done"),
        ("Preparing metadata (pyproject.toml)", "started"),
        ("Preparing metadata (pyproject.toml)", "done"),
    ]
    assert {event.package for event in steps} == {"docopt"}


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_download_transcript(version: str) -> None:
    events = transcript_events(version, "download")
    assert [event.path for event in of_type(events, Saved)] == [
        "./downloads/docopt-0.6.2.tar.gz",
        "./downloads/python_dateutil-2.9.0.post0-py2.py3-none-any.whl",
        "./downloads/six-1.17.0-py2.py3-none-any.whl",
    ]
    summaries = of_type(events, ResolvedProgress)
    assert [(event.kind, event.names) for event in summaries] == [
        ("downloaded", ("docopt", "python-dateutil", "six")),
    ]
    assert of_type(events, CreatedWheel) == []


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_no_binary_transcript_builds_c_extension(version: str) -> None:
    events = transcript_events(version, "no-binary")
    collecting = of_type(events, Collecting)
    assert [(event.name, event.spec, event.origin) for event in collecting] == [
        ("markupsafe", "markupsafe==2.1.5", None)
    ]
    assert of_type(events, Downloading)[0].filename == "MarkupSafe-2.1.5.tar.gz"
    assert of_type(events, Downloading)[0].package == "markupsafe"
    created = of_type(events, CreatedWheel)
    assert len(created) == 1
    assert created[0].filename == "markupsafe-2.1.5-cp311-cp311-linux_x86_64.whl"
    assert created[0].size > 10_000
    assert SHA256.match(created[0].sha256)


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_not_found_transcript(version: str) -> None:
    errors = of_type(transcript_events(version, "not-found"), Error)
    assert len(errors) == 2
    assert errors[0].text.startswith("Could not find a version that satisfies the requirement docopt==99.0")
    assert errors[1].text == "No matching distribution found for docopt==99.0"


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_build_error_transcript(version: str) -> None:
    events = transcript_events(version, "build-error")
    assert of_type(events, Processing)[0].path == "./broken-package"
    building = of_type(events, BuildingWheel)
    assert building[-1].name == "broken-package"
    assert building[-1].state == "error"
    details = [event.text for event in of_type(events, ErrorDetail)]
    assert "exit code: 1" in details
    # pip re-encodes the invalid byte of the build output as "\xe9" text.
    assert any("broken.c:1:1: error: caf" in text for text in details)
    assert "[end of output]" in details
    assert of_type(events, BuildFailed)[0].names == ("broken-package",)
    assert any(event.text.startswith("This error originates from a subprocess") for event in of_type(events, Note))
    error_texts = [event.text for event in of_type(events, Error)]
    assert "subprocess-exited-with-error" in error_texts
    assert "Failed building wheel for broken-package" in error_texts


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_find_links_transcript(version: str) -> None:
    events = transcript_events(version, "find-links")
    assert of_type(events, LookingIn) == [LookingIn(kind="links", locations=("./links",), line="Looking in links: ./links")]
    processing = of_type(events, Processing)
    assert [event.name for event in processing] == ["demo-app", "demo-lib"]
    assert processing[0].path == "./links/demo_app-1.0-py3-none-any.whl"
    assert processing[0].parent is None
    assert (processing[0].requirement_file, processing[0].line_number) == ("local-requirements.txt", 1)
    assert processing[1].parent == "demo-app==1.0"
    assert (processing[1].requirement_file, processing[1].line_number) == ("local-requirements.txt", 1)
    assert [event.path for event in of_type(events, Saved)] == [
        "./wheelhouse/demo_app-1.0-py3-none-any.whl",
        "./wheelhouse/demo_lib-2.1-py3-none-any.whl",
    ]


def test_looking_in_indexes() -> None:
    event = parse_line("Looking in indexes: http://127.0.0.1:8080/simple, https://****@idx.example/simple")
    assert isinstance(event, LookingIn)
    assert event.kind == "indexes"
    assert event.locations == ("http://127.0.0.1:8080/simple", "https://****@idx.example/simple")


@pytest.mark.parametrize("version", ("23.2.1", "24.0"))
def test_progress_bar_frame_in_transcript(version: str) -> None:
    progress = of_type(transcript_events(version, "wheel"), DownloadProgress)
    assert len(progress) == 1
    assert progress[0].done == 229_900
    assert progress[0].total == 229_900
    assert progress[0].rate_text.endswith("MB/s")


# Hand-built lines for shapes the transcripts do not contain.


def test_progress_frames_redrawn_with_carriage_return() -> None:
    splitter = LineSplitter()
    data = (
        "  Downloading numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.whl (16.3 MB)\n"
        "\x1b[?25l     \x1b[90m━━━━━━━━━━━━━━━━━━\x1b[0m \x1b[32m1.0/16.3 MB\x1b[0m \x1b[31m3.2 MB/s\x1b[0m eta \x1b[36m0:00:05\x1b[0m\r"
        "     ━━━━━━━━━━━━━━━━━━ 8.5/16.3 MB 3.4 MB/s eta 0:00:03\r"
        "     ━━━━━━━━━━━━━━━━━━ 16.3/16.3 MB 3.5 MB/s eta 0:00:00\r\n"
    ).encode()
    lines = [clean_line(line) for line in splitter.feed(data)]
    events = list(parse_lines(lines))
    assert isinstance(events[0], Downloading)
    assert events[0].size == 16_300_000
    assert events[0].package == "numpy"
    frames = of_type(events, DownloadProgress)
    assert [(frame.done, frame.total) for frame in frames] == [
        (1_000_000, 16_300_000),
        (8_500_000, 16_300_000),
        (16_300_000, 16_300_000),
    ]
    assert frames[0].rate_text == "3.2 MB/s"


def test_old_progress_bar_frame() -> None:
    event = parse_line("     |████████████████████████████████| 25 kB 1.2 MB/s")
    assert isinstance(event, DownloadProgress)
    assert event.done == 25_000
    assert event.total is None
    assert event.rate_text == "1.2 MB/s"


def test_non_utf8_bytes_become_replacement_characters() -> None:
    splitter = LineSplitter()
    lines = splitter.feed(b"yaml.c:12: warning: caf\xe9 \xff\xfe unused\nSaved ./w/x-1.0-py3-none-any.whl\n")
    assert lines[0] == "yaml.c:12: warning: caf\ufffd \ufffd\ufffd unused"
    assert isinstance(parse_line(lines[0]), Unknown)
    assert isinstance(parse_line(lines[1]), Saved)


def test_saved_relative_and_absolute_paths() -> None:
    relative = parse_line("Saved ./wheelhouse/docopt-0.6.2-py2.py3-none-any.whl")
    assert relative == Saved(path="./wheelhouse/docopt-0.6.2-py2.py3-none-any.whl", line=relative.line)
    absolute = parse_line("Saved /srv/build/wheelhouse/six-1.17.0-py2.py3-none-any.whl")
    assert isinstance(absolute, Saved)
    assert absolute.filename == "six-1.17.0-py2.py3-none-any.whl"
    bare = parse_line("Saved six-1.17.0-py2.py3-none-any.whl")
    assert isinstance(bare, Saved)
    assert bare.filename == "six-1.17.0-py2.py3-none-any.whl"


def test_file_already_downloaded_is_saved_existing() -> None:
    event = parse_line("File was already downloaded /srv/downloads/docopt-0.6.2.tar.gz")
    assert isinstance(event, Saved)
    assert event.existing
    assert event.filename == "docopt-0.6.2.tar.gz"


def test_collecting_with_long_from_chain() -> None:
    event = parse_line(
        "Collecting idna<4,>=2.5 (from requests>=2.0->docker==7.1.0->-r requirements/base.txt (line 12))"
    )
    assert isinstance(event, Collecting)
    assert event.name == "idna"
    assert event.spec == "idna<4,>=2.5"
    assert event.parent == "requests>=2.0"
    assert event.requirement_file == "requirements/base.txt"
    assert event.line_number == 12


def test_collecting_from_constraint_file_and_plain_parent() -> None:
    constrained = parse_line("Collecting six (from -c constraints.txt (line 3))")
    assert isinstance(constrained, Collecting)
    assert (constrained.requirement_file, constrained.line_number) == ("constraints.txt", 3)
    plain = parse_line("Collecting six>=1.5 (from python-dateutil)")
    assert isinstance(plain, Collecting)
    assert plain.parent == "python-dateutil"
    assert plain.requirement_file is None


def test_collecting_with_extras_and_marker() -> None:
    event = parse_line('Collecting uvicorn[standard]>=0.30; python_version >= "3.8"')
    assert isinstance(event, Collecting)
    assert event.name == "uvicorn"
    assert event.origin is None


def test_collecting_url_and_direct_reference() -> None:
    url = parse_line("Collecting https://files.example/pkgs/foo-1.0.tar.gz")
    assert isinstance(url, Collecting)
    assert url.name is None
    direct = parse_line("Collecting foo @ https://files.example/pkgs/foo-1.0.tar.gz")
    assert isinstance(direct, Collecting)
    assert direct.name == "foo"


def test_downloading_full_url_form() -> None:
    event = parse_line("  Downloading https://files.example/packages/ab/cd/six-1.17.0-py2.py3-none-any.whl (11 kB)")
    assert isinstance(event, Downloading)
    assert event.filename == "six-1.17.0-py2.py3-none-any.whl"
    assert event.url == "https://files.example/packages/ab/cd/six-1.17.0-py2.py3-none-any.whl"
    assert event.size == 11_000


def test_downloading_without_size() -> None:
    event = parse_line("  Downloading docopt-0.6.2.tar.gz")
    assert isinstance(event, Downloading)
    assert event.size is None
    assert event.size_text is None


def test_using_cached() -> None:
    event = PipOutputParser().feed("  Using cached docopt-0.6.2.tar.gz (25 kB)")
    assert isinstance(event, UsingCached)
    assert event.filename == "docopt-0.6.2.tar.gz"
    assert event.size == 25_000
    assert event.package == "docopt"


def test_building_wheel_spinner_forms() -> None:
    setup_py = parse_line("  Building wheel for docopt (setup.py) ... done")
    assert setup_py == BuildingWheel(name="docopt", backend="setup.py", state="done", line=setup_py.line)
    plain = parse_line("  Building wheel for pyyaml (pyproject.toml) ... ")
    assert isinstance(plain, BuildingWheel)
    assert plain.backend == "pyproject.toml"
    assert plain.state is None
    legacy = parse_line("  Running setup.py bdist_wheel for docopt ... error")
    assert isinstance(legacy, BuildingWheel)
    assert legacy.name == "docopt"
    assert legacy.state == "error"
    bare = parse_line("  Building wheel for docopt")
    assert isinstance(bare, BuildingWheel)
    assert bare.backend is None


def test_created_wheel_fields() -> None:
    event = parse_line(
        "  Created wheel for PyYAML: filename=PyYAML-6.0.2-cp311-cp311-linux_x86_64.whl size=45120 "
        "sha256=" + "a" * 64
    )
    assert isinstance(event, CreatedWheel)
    assert event.name == "PyYAML"
    assert event.filename == "PyYAML-6.0.2-cp311-cp311-linux_x86_64.whl"
    assert event.size == 45120
    assert event.sha256 == "a" * 64


def test_created_wheel_missing_fields() -> None:
    event = parse_line("  Created wheel for foo: filename=foo-1.0-py3-none-any.whl")
    assert isinstance(event, CreatedWheel)
    assert event.size is None
    assert event.sha256 is None


def test_requirement_already_satisfied() -> None:
    event = parse_line("Requirement already satisfied: six>=1.5 in ./venv/lib/python3.11/site-packages (from python-dateutil) (1.17.0)")
    assert isinstance(event, ResolvedProgress)
    assert event.kind == "satisfied"
    assert event.names == ("six",)


def test_warning_and_deprecation() -> None:
    warning = parse_line("WARNING: Retrying (Retry(total=4)) after connection broken")
    assert isinstance(warning, PipWarning)
    assert warning.text.startswith("Retrying")
    deprecation = parse_line("DEPRECATION: docopt is being installed using the legacy 'setup.py install' method")
    assert isinstance(deprecation, PipWarning)


def test_error_output_block_is_error_detail() -> None:
    parser = PipOutputParser()
    lines = [
        "  ╰─> [3 lines of output]",
        "      Collecting fake (from nothing)",
        "      ERROR: inside the block",
        "      [end of output]",
        "Collecting six",
    ]
    events = [parser.feed(line) for line in lines]
    assert [type(event) for event in events] == [ErrorDetail, ErrorDetail, ErrorDetail, ErrorDetail, Collecting]
    assert events[1].text == "Collecting fake (from nothing)"


@pytest.mark.parametrize(
    "line",
    [
        "",
        "   ",
        "Collecting",
        "Collecting ",
        "Downloading",
        "Created wheel for : filename=",
        "Saved",
        "(from x)",
        "Building wheel for",
        "... done",
        "gcc -O2 -c yaml.c -o build/yaml.o ... done",
        "\ufffd\ufffd\x00\x07",
        "Collecting " + "x" * 100_000,
        "━" * 500,
        "Collecting a (from b->-r (line x))",
    ],
)
def test_odd_lines_never_raise(line: str) -> None:
    event = parse_line(line)
    assert isinstance(event, PipEvent)


def test_compiler_line_with_dots_is_unknown() -> None:
    assert isinstance(parse_line("gcc -O2 -c yaml.c -o build/yaml.o ... done"), Unknown)


def test_unknown_keeps_text() -> None:
    event = parse_line("  Ignoring colorama: markers 'sys_platform == \"win32\"' don't match your environment")
    assert event == Unknown(text=event.line, line=event.line)
    assert event.text.startswith("Ignoring colorama")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("25 kB", 25_000),
        ("1.2 MB", 1_200_000),
        ("500 bytes", 500),
        ("2 GB", 2_000_000_000),
        ("12 KiB", 12_288),
        ("1,024 kB", 1_024_000),
        ("many MB", None),
        ("12 parsecs", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_size(text: str | None, expected: int | None) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("docopt-0.6.2.tar.gz", "docopt"),
        ("MarkupSafe-2.1.5.tar.gz", "markupsafe"),
        ("python_dateutil-2.9.0.post0-py2.py3-none-any.whl", "python-dateutil"),
        ("zope.interface-6.0.zip", "zope-interface"),
        ("foo-bar-1.0.tar.bz2", "foo-bar"),
        ("README", None),
    ],
)
def test_package_from_filename(filename: str, expected: str | None) -> None:
    assert package_from_filename(filename) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("docopt==0.6.2", "docopt"),
        ("zope.interface>=5", "zope.interface"),
        ("uvicorn[standard]", "uvicorn"),
        ("./local/pkg", None),
        ("git+https://git.example/repo.git", None),
        ("pkg @ file:///srv/pkg.whl", "pkg"),
    ],
)
def test_requirement_name(spec: str, expected: str | None) -> None:
    assert requirement_name(spec) == expected

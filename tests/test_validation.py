"""Tests for build_suite.validation and build_suite.offline on small wheelhouses generated in tmp_path.

The wheels are real wheel archives: METADATA, WHEEL and a RECORD with correct
sha256 hashes and sizes, so pip installs them and the integrity check passes.
"""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from pathlib import Path

import pytest

from build_suite.target import TargetSpec
from build_suite.manifest import sha256_file
from build_suite.offline import parse_pip_errors, pip_dry_run_command, resolve_offline, validate_wheelhouse
from build_suite.validation import (
    Problem,
    check_duplicates,
    check_integrity,
    check_pin_conflicts,
    check_requires_python,
    check_wheel_record,
    check_wheel_tags,
    parse_requirements_files,
)

ROOT = Path(__file__).resolve().parents[1]
REAL_INPUT = ROOT.parent / "shared" / "real-input" / "xnai"
PY312 = TargetSpec(python="3.12")


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    tag: str = "py3-none-any",
    requires: tuple[str, ...] = (),
    requires_python: str | None = None,
) -> Path:
    """Write a minimal valid wheel with one module and a correct RECORD."""
    distribution = name.replace("-", "_")
    dist_info = f"{distribution}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    metadata += "".join(f"Requires-Dist: {requirement}\n" for requirement in requires)
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    files = {
        f"{distribution}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: build-suite-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    record_lines = [f"{path},{record_hash(data)},{len(data)}" for path, data in files.items()]
    record_lines.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record_lines) + "\n").encode()

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{distribution}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for member, data in files.items():
            archive.writestr(member, data)
    return path


def rewrite_member(path: Path, member: str, data: bytes) -> None:
    """Replace one member's bytes without touching RECORD, as a corrupted download would."""
    with zipfile.ZipFile(path) as archive:
        contents = {info.filename: archive.read(info) for info in archive.infolist()}
    contents[member] = data
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in contents.items():
            archive.writestr(name, content)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- requirements files


def test_parse_follows_includes_and_skips_options(tmp_path):
    write(tmp_path / "base.txt", "redis==6.4.0  # cache\n")
    main = write(
        tmp_path / "main.txt",
        "# comment line\n"
        "--index-url https://example.invalid/simple\n"
        "-r base.txt\n"
        "requests==2.32.5 \\\n"
        "    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000 \\\n"
        "    --hash=sha256:1111111111111111111111111111111111111111111111111111111111111111\n"
        'tomli>=2; python_version < "3.11"\n'
        "-e ./local-package\n"
        "uvicorn[standard]>=0.38.0\n",
    )

    lines, problems = parse_requirements_files([main])

    assert problems == []
    by_name = {line.name: line for line in lines}
    assert sorted(by_name) == ["redis", "requests", "tomli", "uvicorn"]
    assert str(by_name["requests"].requirement.specifier) == "==2.32.5"
    assert by_name["requests"].line == 4
    assert by_name["redis"].file == tmp_path / "base.txt"
    assert str(by_name["tomli"].requirement.marker) == 'python_version < "3.11"'
    assert by_name["uvicorn"].requirement.extras == {"standard"}


def test_parse_include_cycle_terminates(tmp_path):
    first = write(tmp_path / "a.txt", "-r b.txt\nalpha==1.0\n")
    write(tmp_path / "b.txt", "--requirement=a.txt\nbeta==2.0\n")

    lines, problems = parse_requirements_files([first])

    assert problems == []
    assert sorted(line.name for line in lines) == ["alpha", "beta"]


def test_parse_constraint_include_marked(tmp_path):
    main = write(tmp_path / "main.txt", "-c constraints.txt\nrequests\n")
    write(tmp_path / "constraints.txt", "requests==2.32.5\n")

    lines, _ = parse_requirements_files([main])

    constraint = [line for line in lines if line.constraint]
    assert [str(line.requirement) for line in constraint] == ["requests==2.32.5"]


def test_parse_invalid_line_is_problem(tmp_path):
    main = write(tmp_path / "main.txt", "requests>=>2\nredis==6.4.0\n")

    lines, problems = parse_requirements_files([main])

    assert [line.name for line in lines] == ["redis"]
    assert len(problems) == 1
    assert problems[0].file == f"{main}:1"
    assert "invalid requirement" in problems[0].message


def test_parse_missing_include_is_problem(tmp_path):
    main = write(tmp_path / "main.txt", "-r missing.txt\n")

    _, problems = parse_requirements_files([main])

    assert len(problems) == 1
    assert "missing.txt" in problems[0].file
    assert "cannot read" in problems[0].message


# ---------------------------------------------------------------- pin conflicts


def test_pin_beside_compatible_range_no_conflict(tmp_path):
    requirements = write(tmp_path / "api.txt", "requests>=2.31.0\nurllib3>=2.1.0\nrequests==2.32.5\n")

    assert check_pin_conflicts([requirements]) == []


def test_two_pins_conflict_names_both_files(tmp_path):
    api = write(tmp_path / "api.txt", "redis==1.0\n")
    worker = write(tmp_path / "worker.txt", "# worker\nRedis==2.0\n")

    problems = check_pin_conflicts([api, worker])

    assert len(problems) == 1
    assert f"{api}:1" in problems[0].message
    assert f"{worker}:2" in problems[0].message
    assert "==1.0" in problems[0].message
    assert "==2.0" in problems[0].message
    assert "redis" in problems[0].hint


def test_ranges_without_overlap_conflict(tmp_path):
    api = write(tmp_path / "api.txt", "pydantic>=2.0\n")
    worker = write(tmp_path / "worker.txt", "pydantic<2\n")

    problems = check_pin_conflicts([api, worker])

    assert len(problems) == 1
    assert "pydantic" in problems[0].message


def test_three_way_conflict_lists_all_lines(tmp_path):
    requirements = write(tmp_path / "req.txt", "lib>=1.0,<3.0\nlib!=1.5\nlib~=1.5.0\nlib<=1.5\n")

    problems = check_pin_conflicts([requirements])

    assert len(problems) == 1
    assert "exclude every version" in problems[0].message


def test_marker_excludes_line_for_target(tmp_path):
    requirements = write(tmp_path / "req.txt", 'tomli==1.0; python_version < "3.11"\ntomli==2.0\n')

    assert check_pin_conflicts([requirements], PY312) == []
    assert len(check_pin_conflicts([requirements])) == 1


def test_real_input_has_no_pin_conflicts():
    api = REAL_INPUT / "requirements-api.txt"
    worker = REAL_INPUT / "requirements-curation_worker.txt"
    if not api.is_file() or not worker.is_file():
        pytest.skip("the real input requirements files are not next to the repository")

    lines, parse_problems = parse_requirements_files([api, worker])
    problems = check_pin_conflicts([api, worker], TargetSpec(python="3.11"))

    assert parse_problems == []
    assert problems == []
    requests_lines = [str(line.requirement.specifier) for line in lines if line.name == "requests"]
    assert sorted(requests_lines) == ["==2.32.5", ">=2.31.0"]


# ---------------------------------------------------------------- wheelhouse contents


def test_duplicate_versions_name_files_and_requesters(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    old = make_wheel(wheelhouse, "requests", "2.31.0")
    new = make_wheel(wheelhouse, "requests", "2.32.5")
    make_wheel(wheelhouse, "redis", "6.4.0")
    api = write(tmp_path / "api.txt", "requests==2.32.5\nredis==6.4.0\n")
    worker = write(tmp_path / "worker.txt", "requests==2.31.0\n")

    problems = check_duplicates(wheelhouse, [api, worker], PY312)

    assert len(problems) == 1
    message = problems[0].message
    assert old.name in message
    assert new.name in message
    assert f"{new.name} is requested by {api}:1" in message
    assert f"{old.name} is requested by {worker}:1" in message
    assert "delete" in problems[0].hint


def test_same_version_other_tags_not_duplicate(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "fast", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(wheelhouse, "fast", "1.0", tag="cp312-cp312-manylinux_2_17_x86_64")

    assert check_duplicates(wheelhouse) == []


def test_duplicate_unrequested_version_explained(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    stale = make_wheel(wheelhouse, "idna", "3.6")
    make_wheel(wheelhouse, "idna", "3.10")
    requirements = write(tmp_path / "req.txt", "idna==3.10\n")

    problems = check_duplicates(wheelhouse, [requirements])

    assert f"{stale.name} is requested by no requirements file" in problems[0].message


def test_cp311_wheel_for_cp312_target_fails(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheel = make_wheel(wheelhouse, "fast", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    make_wheel(wheelhouse, "pure", "1.0")

    problems = check_wheel_tags(wheelhouse, PY312)

    assert len(problems) == 1
    assert problems[0].file == str(wheel)
    assert "built for cp311 but the target is CPython 3.12" in problems[0].message
    assert '[target] python = "3.11"' in problems[0].hint


def test_sdist_in_wheelhouse_fails(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    write(wheelhouse / "python-magic-0.4.27.tar.gz", "not really a tarball")
    write(wheelhouse / "notes.txt", "ignored")

    problems = check_wheel_tags(wheelhouse, PY312)

    assert len(problems) == 1
    assert "source distribution" in problems[0].message
    assert "pip wheel" in problems[0].hint


def test_local_wheel_fails_portable_target(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "native", "1.0", tag="cp312-cp312-linux_x86_64")

    assert check_wheel_tags(wheelhouse, PY312) == []
    problems = check_wheel_tags(wheelhouse, TargetSpec(python="3.12", portable=True))
    assert len(problems) == 1
    assert "auditwheel repair" in problems[0].hint


# ---------------------------------------------------------------- integrity


def test_valid_wheels_pass_integrity(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    first = make_wheel(wheelhouse, "alpha", "1.0")
    second = make_wheel(wheelhouse, "beta", "2.0", requires=("alpha>=1",))
    manifest = {first.name: sha256_file(first), second.name: sha256_file(second)}

    assert check_integrity(wheelhouse, manifest) == []


def test_truncated_wheel_names_file_and_fix(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheel = make_wheel(wheelhouse, "alpha", "1.0")
    data = wheel.read_bytes()
    wheel.write_bytes(data[: len(data) // 2])

    problems = check_integrity(wheelhouse)

    assert len(problems) == 1
    assert problems[0].file == str(wheel)
    assert "not a valid zip" in problems[0].message
    assert problems[0].hint == f"delete {wheel.name} and rebuild the wheelhouse"


def test_changed_member_fails_record_hash(tmp_path):
    wheel = make_wheel(tmp_path, "alpha", "1.0")
    rewrite_member(wheel, "alpha/__init__.py", b"VERSION = 'tampered'\n")

    problems = check_wheel_record(wheel)

    assert len(problems) == 1
    assert "alpha/__init__.py does not match its RECORD hash" in problems[0].message


def test_unlisted_and_missing_members_fail(tmp_path):
    wheel = make_wheel(tmp_path, "alpha", "1.0")
    with zipfile.ZipFile(wheel, "a") as archive:
        archive.writestr("alpha/extra.py", b"x = 1\n")
    with zipfile.ZipFile(wheel) as archive:
        record = archive.read("alpha-1.0.dist-info/RECORD").decode()
    rewrite_member(wheel, "alpha-1.0.dist-info/RECORD", (record + "alpha/gone.py,sha256=abc,3\n").encode())

    messages = [problem.message for problem in check_wheel_record(wheel)]

    assert "alpha/extra.py is in the wheel but not in its RECORD" in messages
    assert "RECORD lists alpha/gone.py but the wheel does not contain it" in messages


def test_record_size_mismatch_fails(tmp_path):
    wheel = make_wheel(tmp_path, "alpha", "1.0")
    with zipfile.ZipFile(wheel) as archive:
        record = archive.read("alpha-1.0.dist-info/RECORD").decode()
    data = b"VERSION = '1.0'\n"
    wrong_size = record.replace(f"{record_hash(data)},{len(data)}", f"{record_hash(data)},999")
    assert wrong_size != record
    rewrite_member(wheel, "alpha-1.0.dist-info/RECORD", wrong_size.encode())

    messages = [problem.message for problem in check_wheel_record(wheel)]

    assert messages == [f"alpha/__init__.py is {len(data)} bytes but RECORD says 999"]


def test_weak_record_hash_rejected(tmp_path):
    wheel = make_wheel(tmp_path, "alpha", "1.0")
    with zipfile.ZipFile(wheel) as archive:
        record = archive.read("alpha-1.0.dist-info/RECORD").decode()
    md5 = base64.urlsafe_b64encode(hashlib.md5(b"VERSION = '1.0'\n").digest()).rstrip(b"=").decode()
    lines = [
        f"alpha/__init__.py,md5={md5},16" if line.startswith("alpha/__init__.py") else line
        for line in record.splitlines()
    ]
    rewrite_member(wheel, "alpha-1.0.dist-info/RECORD", ("\n".join(lines) + "\n").encode())

    messages = [problem.message for problem in check_wheel_record(wheel)]

    assert messages == ["RECORD uses the unsupported hash 'md5' for alpha/__init__.py"]


def test_wheel_without_record_fails(tmp_path):
    wheel = tmp_path / "alpha-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("alpha/__init__.py", b"")

    problems = check_wheel_record(wheel)

    messages = [problem.message for problem in problems]
    assert messages == ["wheel must contain exactly one .dist-info/RECORD file, found 0"]


def test_manifest_mismatch_and_gaps(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    listed = make_wheel(wheelhouse, "alpha", "1.0")
    unlisted = make_wheel(wheelhouse, "beta", "1.0")
    manifest = {listed.name: "0" * 64, "gamma-1.0-py3-none-any.whl": "1" * 64}

    problems = check_integrity(wheelhouse, manifest)
    by_file = {Path(problem.file).name: problem for problem in problems}

    assert set(by_file) == {listed.name, unlisted.name, "gamma-1.0-py3-none-any.whl"}
    assert "does not match the manifest" in by_file[listed.name].message
    assert by_file[listed.name].hint == f"delete {listed.name} and rebuild the wheelhouse"
    assert "not listed in the manifest" in by_file[unlisted.name].message
    assert "missing from the wheelhouse" in by_file["gamma-1.0-py3-none-any.whl"].message


def test_requires_python_checked_against_target(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    newer = make_wheel(wheelhouse, "newer", "1.0", requires_python=">=3.13")
    make_wheel(wheelhouse, "fine", "1.0", requires_python=">=3.9")

    problems = check_requires_python(wheelhouse, PY312)

    assert [problem.file for problem in problems] == [str(newer)]
    assert "requires Python >=3.13 but the target is CPython 3.12" in problems[0].message
    assert check_requires_python(wheelhouse, TargetSpec(python="3.13")) == []


def test_requires_python_patch_release(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    wheel = make_wheel(wheelhouse, "soupsieve", "4.1.4", requires_python=">=3.11.5")

    minor_only = check_requires_python(wheelhouse, TargetSpec(python="3.11"))
    old_patch = check_requires_python(wheelhouse, TargetSpec(python="3.11.2"))
    new_patch = check_requires_python(wheelhouse, TargetSpec(python="3.11.7"))

    assert [problem.file for problem in minor_only] == [str(wheel)]
    assert "only some 3.11 patch releases satisfy" in minor_only[0].message
    assert "exact version in the image" in minor_only[0].hint
    assert [problem.message for problem in old_patch] == [
        "requires Python >=3.11.5 but the target is CPython 3.11.2"
    ]
    assert new_patch == []


# ---------------------------------------------------------------- offline resolution


def test_dry_run_command_targets_platforms(tmp_path):
    target = TargetSpec(python="3.12", glibc="2.17")

    command = pip_dry_run_command(tmp_path / "wh", [tmp_path / "req.txt"], target, tmp_path / "t")

    assert command[command.index("--python-version") + 1] == "3.12"
    platforms = [command[index + 1] for index, part in enumerate(command) if part == "--platform"]
    assert platforms[0] == "manylinux_2_17_x86_64"
    assert "manylinux1_x86_64" in platforms
    assert "linux_x86_64" in platforms
    abis = [command[index + 1] for index, part in enumerate(command) if part == "--abi"]
    assert abis == ["cp312", "abi3", "none"]
    assert command[-2:] == ["-r", str(tmp_path / "req.txt")]


def test_dry_run_command_portable_free_threaded(tmp_path):
    target = TargetSpec(python="3.13", portable=True, free_threaded=True)

    command = pip_dry_run_command(tmp_path, [], target, tmp_path)

    assert "linux_x86_64" not in command
    abis = [command[index + 1] for index, part in enumerate(command) if part == "--abi"]
    assert abis == ["cp313t", "none"]


def test_offline_resolution_succeeds(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "app-a", "1.0", requires=("helper>=1",))
    make_wheel(wheelhouse, "helper", "1.2")
    requirements = write(tmp_path / "req.txt", "app-a==1.0\n")

    resolution = resolve_offline(wheelhouse, [requirements], PY312)

    assert resolution.problems == []
    assert resolution.returncode == 0
    assert sorted(resolution.installs) == [("app-a", "1.0"), ("helper", "1.2")]


def test_missing_transitive_dependency_named(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "app-a", "1.0", requires=("missing-dep>=1",))
    requirements = write(tmp_path / "req.txt", "app-a==1.0\n")

    problems = resolve_offline(wheelhouse, [requirements], PY312).problems

    assert len(problems) == 1
    message = problems[0].message
    assert f"no wheel in the wheelhouse for missing-dep>=1 (required by app-a, from {requirements}:1)" in message
    assert "missing-dep" in problems[0].hint
    assert problems[0].file == str(wheelhouse)


def test_missing_direct_requirement_names_line(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "present", "1.0")
    requirements = write(tmp_path / "req.txt", "present\nabsent==2.0\n")

    problems = resolve_offline(wheelhouse, [requirements], PY312).problems

    assert len(problems) == 1
    assert problems[0].file.endswith("req.txt:2")
    assert "absent==2.0" in problems[0].message


def test_resolution_ignores_machine_pip_settings(tmp_path, monkeypatch):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "app-a", "1.0", requires=("missing-dep>=1",))
    elsewhere = tmp_path / "elsewhere"
    make_wheel(elsewhere, "missing-dep", "1.0")
    config = write(tmp_path / "pip.conf", f"[global]\nfind-links = {elsewhere}\n")
    monkeypatch.setenv("PIP_FIND_LINKS", str(elsewhere))
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    requirements = write(tmp_path / "req.txt", "app-a==1.0\n")

    problems = resolve_offline(wheelhouse, [requirements], PY312).problems

    assert len(problems) == 1
    assert "missing-dep" in problems[0].message


def test_resolution_rejects_wrong_python_wheel(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "fast", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64")
    requirements = write(tmp_path / "req.txt", "fast\n")

    problems = resolve_offline(wheelhouse, [requirements], PY312).problems

    assert len(problems) == 1
    assert "no wheel in the wheelhouse for fast" in problems[0].message


def test_resolution_reports_missing_python(tmp_path):
    requirements = write(tmp_path / "req.txt", "x\n")

    problems = resolve_offline(tmp_path, [requirements], PY312, python=str(tmp_path / "no-python")).problems

    assert len(problems) == 1
    assert "cannot run pip" in problems[0].message


def test_parse_pip_errors_conflict_causes():
    stderr = (
        "ERROR: Cannot install a==1.0 and b==1.0 because these package versions have conflicting dependencies.\n"
        "\n"
        "The conflict is caused by:\n"
        "    a 1.0 depends on c==1\n"
        "    b 1.0 depends on c==2\n"
        "\n"
        "ERROR: ResolutionImpossible: for help visit the pip documentation\n"
    )

    problems = parse_pip_errors(stderr, "wh")

    assert len(problems) == 1
    assert "Cannot install a==1.0 and b==1.0" in problems[0].message
    assert "a 1.0 depends on c==1; b 1.0 depends on c==2" in problems[0].message


def test_parse_pip_errors_versions_listed():
    stderr = (
        "ERROR: Could not find a version that satisfies the requirement idna<4,>=2.5 (from requests) "
        "(from versions: 1.0, 1.1)\n"
        "ERROR: No matching distribution found for idna<4,>=2.5\n"
    )

    problems = parse_pip_errors(stderr, "wh")

    assert problems == [
        Problem(
            "wh",
            "no wheel in the wheelhouse for idna<4,>=2.5 (required by requests); "
            "the wheelhouse has only versions 1.0, 1.1",
            problems[0].hint,
        )
    ]
    assert "idna" in problems[0].hint


# ---------------------------------------------------------------- all checks


def test_validate_wheelhouse_passes_good_one(tmp_path):
    wheelhouse = tmp_path / "wheelhouse"
    app = make_wheel(wheelhouse, "app-a", "1.0", requires=("helper>=1",), requires_python=">=3.9")
    helper = make_wheel(wheelhouse, "helper", "1.2", tag="cp312-abi3-manylinux_2_17_x86_64")
    requirements = write(tmp_path / "req.txt", "app-a==1.0\n")
    manifest = {app.name: sha256_file(app), helper.name: sha256_file(helper)}

    assert validate_wheelhouse(wheelhouse, [requirements], PY312, manifest) == []


@pytest.mark.parametrize("case", ["duplicate", "cp311", "truncated", "transitive"])
def test_validate_wheelhouse_failures_name_file_and_fix(tmp_path, case):
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse, "app-a", "1.0", requires=("helper>=1",))
    helper = make_wheel(wheelhouse, "helper", "1.2")
    requirements = write(tmp_path / "req.txt", "app-a==1.0\nhelper==1.2\n")
    if case == "duplicate":
        culprit = make_wheel(wheelhouse, "helper", "1.1").name
        expected_fix = "delete"
    elif case == "cp311":
        culprit = make_wheel(wheelhouse, "fast", "1.0", tag="cp311-cp311-manylinux_2_17_x86_64").name
        expected_fix = '[target] python = "3.11"'
    elif case == "truncated":
        culprit = helper.name
        helper.write_bytes(helper.read_bytes()[:100])
        expected_fix = f"delete {helper.name}"
    else:
        culprit = "helper"
        helper.unlink()
        requirements.write_text("app-a==1.0\n", encoding="utf-8")
        expected_fix = "helper"

    problems = validate_wheelhouse(wheelhouse, [requirements], PY312, python=sys.executable)

    assert problems, "the wheelhouse must fail validation"
    assert any(culprit in problem.file or culprit in problem.message for problem in problems)
    assert any(expected_fix in problem.hint for problem in problems)

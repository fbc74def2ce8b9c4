"""Tests for build_suite.target: wheel tags against the target interpreter and platform.

The expected values in CASES come from the packaging specifications, not from
the implementation. Each row names the rule it exercises:
  PEP 425  compatibility tags, compressed tag sets (py2.py3, dotted platforms) and
           the installer's list (current pyXY, older py3X, cpXY-none-any for the current version only)
  PEP 427  wheel file name: name-version[-build]-python-abi-platform, build tag starts with a digit
  PEP 384/3149  abi3: a cpXY-abi3 wheel loads on CPython X.Y and every later 3.x
  PEP 600  manylinux_x_y needs glibc >= x.y; manylinux1/2010/2014 are 2.5/2.12/2.17 aliases,
           manylinux1 and manylinux2010 only for x86_64 and i686
  PEP 703  free-threaded builds use the "t" ABI flag and cannot load abi3 or default-build extensions
  PEP 656  musllinux wheels need musl libc, not glibc
"""

from __future__ import annotations

import pytest

from build_suite.target import (
    TargetError,
    TargetSpec,
    check_wheel,
    marker_environment,
    platform_tags,
    supported_tags,
)

PY311 = TargetSpec(python="3.11")
PY312 = TargetSpec(python="3.12")
PY313 = TargetSpec(python="3.13")
PY313T = TargetSpec(python="3.13", free_threaded=True)
PY312_PORTABLE = TargetSpec(python="3.12", portable=True)
PY312_GLIBC_2_12 = TargetSpec(python="3.12", glibc="2.12")
PY312_GLIBC_2_17 = TargetSpec(python="3.12", glibc="2.17")
PY312_AARCH64 = TargetSpec(python="3.12", arch="aarch64")

# (filename, target, ok, matched tag or None, word the reason must contain or None)
CASES = [
    # PEP 427: a pure wheel matches py3-none-any.
    ("requests-2.32.5-py3-none-any.whl", PY312, True, "py3-none-any", None),
    # PEP 425 compressed tag set: py2.py3 passes when any member is supported.
    ("six-1.16.0-py2.py3-none-any.whl", PY312, True, "py3-none-any", None),
    # PEP 425: a py2-only wheel has no Python 3 tag.
    ("futures-3.0.5-py2-none-any.whl", PY312, False, None, "Python 2"),
    # PEP 425: an installer accepts its own pyXY tag.
    ("newer-1.0-py312-none-any.whl", PY312, True, "py312-none-any", None),
    # PEP 425: the installer lists older py3X tags too.
    ("older-1.0-py311-none-any.whl", PY312, True, "py311-none-any", None),
    # PEP 425: a newer pyXY is not in the list of an older interpreter.
    ("newer-1.0-py312-none-any.whl", PY311, False, None, "py312"),
    # PEP 425: cpXY-none-any is listed for the running version only.
    ("purecp-1.0-cp312-none-any.whl", PY312, True, "cp312-none-any", None),
    ("purecp-1.0-cp311-none-any.whl", PY312, False, None, "cp311"),
    # PEP 425: py3-none-<platform> is a supported combination.
    ("platonly-1.0-py3-none-manylinux_2_17_x86_64.whl", PY312, True, "py3-none-manylinux_2_17_x86_64", None),
    # PEP 600 + PEP 425 dotted platforms: the manylinux_2_17 member matches.
    (
        "numpy-2.1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        PY312,
        True,
        "cp312-cp312-manylinux_2_17_x86_64",
        None,
    ),
    # PEP 425: a CPython ABI tag binds the wheel to one minor version.
    ("numpy-2.1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", PY312, False, None, 'python = "3.11"'),
    ("numpy-2.1.0-cp313-cp313-manylinux_2_17_x86_64.whl", PY312, False, None, "cp313"),
    # PEP 425 compressed interpreter and ABI sets: cp312-cp312 is one of the combinations.
    (
        "multi-1.0-cp311.cp312-cp311.cp312-manylinux_2_17_x86_64.whl",
        PY312,
        True,
        "cp312-cp312-manylinux_2_17_x86_64",
        None,
    ),
    # PEP 384: cp38-abi3 loads on every later CPython 3.
    ("cryptography-43.0.0-cp38-abi3-manylinux_2_28_x86_64.whl", PY312, True, "cp38-abi3-manylinux_2_28_x86_64", None),
    # PEP 384: cpXY-abi3 loads on CPython X.Y itself.
    ("stable-1.0-cp312-abi3-manylinux_2_17_x86_64.whl", PY312, True, "cp312-abi3-manylinux_2_17_x86_64", None),
    # PEP 384: cpXY-abi3 needs at least CPython X.Y.
    ("stable-1.0-cp313-abi3-manylinux_2_17_x86_64.whl", PY312, False, None, "3.13 and newer"),
    # PEP 703: free-threaded CPython cannot load abi3 extensions.
    ("stable-1.0-cp38-abi3-manylinux_2_17_x86_64.whl", PY313T, False, None, "free-threaded"),
    # PEP 703: a cp313t wheel does not satisfy a default (GIL) build.
    ("ft-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl", PY313, False, None, "free-threaded"),
    # PEP 703: a cp313t wheel matches a free-threaded target.
    ("ft-1.0-cp313-cp313t-manylinux_2_17_x86_64.whl", PY313T, True, "cp313-cp313t-manylinux_2_17_x86_64", None),
    # PEP 703: a default-build cp313 wheel does not load on the free-threaded build.
    ("gil-1.0-cp313-cp313-manylinux_2_17_x86_64.whl", PY313T, False, None, "cp313t"),
    # PEP 600: manylinux_2_36 on glibc 2.36 is accepted.
    ("glibc-1.0-cp312-cp312-manylinux_2_36_x86_64.whl", PY312, True, "cp312-cp312-manylinux_2_36_x86_64", None),
    # PEP 600: manylinux_2_38 needs glibc 2.38.
    ("glibc-1.0-cp312-cp312-manylinux_2_38_x86_64.whl", PY312, False, None, "glibc 2.38"),
    # PEP 600: manylinux_2_28 needs glibc 2.28, more than 2.17.
    ("glibc-1.0-cp312-cp312-manylinux_2_28_x86_64.whl", PY312_GLIBC_2_17, False, None, "glibc 2.28"),
    # PEP 600: manylinux1 is the alias of manylinux_2_5.
    ("legacy-1.0-cp312-cp312-manylinux1_x86_64.whl", PY312, True, "cp312-cp312-manylinux1_x86_64", None),
    # PEP 600: manylinux2010 is the alias of manylinux_2_12.
    (
        "legacy-1.0-cp312-cp312-manylinux2010_x86_64.whl",
        PY312_GLIBC_2_12,
        True,
        "cp312-cp312-manylinux2010_x86_64",
        None,
    ),
    # PEP 600: manylinux2014 is manylinux_2_17, too new for glibc 2.12.
    ("legacy-1.0-cp312-cp312-manylinux2014_x86_64.whl", PY312_GLIBC_2_12, False, None, "glibc 2.17"),
    # PEP 600: manylinux2014 exists for aarch64.
    ("arm-1.0-cp312-cp312-manylinux2014_aarch64.whl", PY312_AARCH64, True, "cp312-cp312-manylinux2014_aarch64", None),
    # PEP 600: manylinux2010 was defined for x86_64 and i686 only.
    ("arm-1.0-cp312-cp312-manylinux2010_aarch64.whl", PY312_AARCH64, False, None, "not defined"),
    # PEP 600: the architecture is part of the platform tag.
    ("arm-1.0-cp312-cp312-manylinux_2_17_aarch64.whl", PY312, False, None, "aarch64"),
    # PEP 656: musllinux wheels do not run on glibc.
    ("musl-1.0-cp312-cp312-musllinux_1_2_x86_64.whl", PY312, False, None, "musl"),
    # PEP 425: platform tags of other systems never match Linux.
    ("win-1.0-cp312-cp312-win_amd64.whl", PY312, False, None, "Windows"),
    ("mac-1.0-cp312-cp312-macosx_11_0_arm64.whl", PY312, False, None, "macOS"),
    # PEP 425 dotted platforms: a macOS member does not hide the manylinux member.
    (
        "mixed-1.0-cp312-cp312-macosx_11_0_arm64.manylinux_2_17_x86_64.whl",
        PY312,
        True,
        "cp312-cp312-manylinux_2_17_x86_64",
        None,
    ),
    # PEP 425: other implementations use another interpreter tag.
    ("pypy-1.0-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl", PY312, False, None, "PyPy"),
    # PEP 425: linux_<arch> of another architecture never matches.
    ("local-1.0-cp312-cp312-linux_aarch64.whl", PY312, False, None, "aarch64"),
    # PEP 513/600: linux_<arch> wheels are not portable, so a portable target rejects them.
    ("local-1.0-cp312-cp312-linux_x86_64.whl", PY312_PORTABLE, False, None, "auditwheel"),
    # PEP 600: a manylinux wheel is portable.
    (
        "portable-1.0-cp312-cp312-manylinux_2_17_x86_64.whl",
        PY312_PORTABLE,
        True,
        "cp312-cp312-manylinux_2_17_x86_64",
        None,
    ),
    # PEP 427: a file name with the wrong number of parts is invalid.
    ("not-a-wheel.whl", PY312, False, None, "NAME-VERSION"),
    ("broken-1.0-py3-none.whl", PY312, False, None, "NAME-VERSION"),
    # PEP 427: the build tag must start with a digit.
    ("badbuild-1.0-abc-py3-none-any.whl", PY312, False, None, "NAME-VERSION"),
    # PEP 440 via PEP 427: the version part must be a valid version.
    ("badversion-1.0_x_y-py3-none-any.whl", PY312, False, None, "NAME-VERSION"),
    # A source distribution is not a wheel and cannot be installed with --only-binary.
    ("requests-2.32.5.tar.gz", PY312, False, None, "source distribution"),
]


CASE_IDS = [f"{filename}@{target.python}" for filename, target, *_ in CASES]


@pytest.mark.parametrize(("filename", "target", "ok", "matched_tag", "reason_word"), CASES, ids=CASE_IDS)
def test_check_wheel_table(filename, target, ok, matched_tag, reason_word):
    verdict = check_wheel(filename, target)

    assert verdict.filename == filename
    assert verdict.ok is ok, verdict.reason
    if ok:
        assert verdict.matched_tag == matched_tag
    if reason_word is not None:
        assert reason_word in verdict.reason
    if not ok:
        assert verdict.fix, "a failing verdict must say how to fix it"
        assert verdict.reason.endswith(verdict.fix)


def test_table_covers_at_least_thirty_cases():
    assert len(CASES) >= 30


def test_local_wheel_ok_but_local_only():
    verdict = check_wheel("local-1.0-cp312-cp312-linux_x86_64.whl", PY312)

    assert verdict.ok is True
    assert verdict.local_only is True
    assert verdict.matched_tag == "cp312-cp312-linux_x86_64"
    assert "host like the one that built it" in verdict.reason


def test_manylinux_wheel_not_local_only():
    verdict = check_wheel("m-1.0-cp312-cp312-manylinux_2_17_x86_64.linux_x86_64.whl", PY312)

    assert verdict.ok is True
    assert verdict.local_only is False
    assert verdict.matched_tag == "cp312-cp312-manylinux_2_17_x86_64"


@pytest.mark.parametrize(
    ("filename", "version", "build_tag"),
    [
        ("pkg-1.0-1-py3-none-any.whl", "1.0", "1"),
        ("pkg-2.0-12abc-py3-none-any.whl", "2.0", "12abc"),
        ("pkg-1.0.post1-py3-none-any.whl", "1.0.post1", None),
        ("pkg-3-20240101-py3-none-any.whl", "3", "20240101"),
    ],
)
def test_build_tag_parsed_apart_from_version(filename, version, build_tag):
    verdict = check_wheel(filename, PY312)

    assert verdict.ok is True
    assert verdict.version == version
    assert verdict.build_tag == build_tag


def test_name_is_canonical():
    verdict = check_wheel("Foo_Bar-1.0-py3-none-any.whl", PY312)

    assert verdict.name == "foo-bar"


def test_path_accepted_as_filename(tmp_path):
    verdict = check_wheel(tmp_path / "requests-2.32.5-py3-none-any.whl", PY312)

    assert verdict.filename == "requests-2.32.5-py3-none-any.whl"
    assert verdict.ok is True


@pytest.mark.parametrize("filename", ["", ".whl", "-.whl", "a-b-c-d-e-f-g.whl", "x-1.0-py3-none-any.WHL"])
def test_invalid_filenames_never_raise(filename):
    verdict = check_wheel(filename, PY312)

    assert verdict.ok is False
    assert verdict.reason


def test_cp311_reason_says_how_to_fix():
    verdict = check_wheel("pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", PY312)

    assert "built for cp311 but the target is CPython 3.12" in verdict.reason
    assert "rebuild the wheelhouse for the target" in verdict.reason
    assert '[target] python = "3.11"' in verdict.reason


def test_supported_tags_start_with_most_specific():
    tags = [str(tag) for tag in supported_tags(PY312)]

    assert tags[0] == "cp312-cp312-manylinux_2_36_x86_64"
    assert tags[-1] == "py30-none-any"
    assert "cp32-abi3-manylinux_2_5_x86_64" in tags
    assert "cp312-cp312-manylinux2014_x86_64" in tags


def test_free_threaded_tags_exclude_abi3():
    tags = {str(tag) for tag in supported_tags(PY313T)}

    assert "cp313-cp313t-manylinux_2_17_x86_64" in tags
    assert not any("-abi3-" in tag for tag in tags)
    assert not any("-cp313-" in tag for tag in tags)


def test_platform_tags_glibc_range_and_aliases():
    platforms = platform_tags(TargetSpec(glibc="2.17"))

    assert platforms[0] == "manylinux_2_17_x86_64"
    assert platforms[1] == "manylinux2014_x86_64"
    assert "manylinux2010_x86_64" in platforms
    assert platforms[-2:] == ["manylinux1_x86_64", "linux_x86_64"]
    assert "manylinux_2_18_x86_64" not in platforms


def test_platform_tags_aarch64_start_at_2_17():
    platforms = platform_tags(PY312_AARCH64, include_local=False)

    assert platforms[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert not any("manylinux1" in platform or "manylinux2010" in platform for platform in platforms)


def test_python_before_3_8_uses_pymalloc_abi():
    verdict = check_wheel("old-1.0-cp37-cp37m-manylinux_2_17_x86_64.whl", TargetSpec(python="3.7"))

    assert verdict.ok is True


@pytest.mark.parametrize(
    ("field", "value", "key"),
    [
        ("python", "3", "python"),
        ("python", "three", "python"),
        ("implementation", "pypy", "implementation"),
        ("platform", "darwin", "platform"),
        ("libc", "musl", "libc"),
        ("glibc", "236", "glibc"),
        ("arch", "sparc", "arch"),
    ],
)
def test_invalid_target_raises(field, value, key):
    with pytest.raises(TargetError) as error:
        TargetSpec(**{field: value})

    assert error.value.key == key
    assert repr(value) in str(error.value)


def test_arch_alias_amd64():
    target = TargetSpec(arch="amd64")

    assert platform_tags(target)[0] == "manylinux_2_36_x86_64"


def test_marker_environment_for_target():
    environment = marker_environment(TargetSpec(python="3.12", arch="aarch64"))

    assert environment["python_version"] == "3.12"
    assert environment["python_full_version"] == "3.12.0"
    assert environment["platform_machine"] == "aarch64"
    assert environment["sys_platform"] == "linux"

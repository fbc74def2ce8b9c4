"""Wheel compatibility with the target interpreter and platform.

The supported tag set comes from packaging.tags for the target (not for the
running interpreter), so a wheelhouse built for another Python version, glibc
or architecture is caught before the image build installs from it.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass

from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename
from packaging.version import InvalidVersion

# Architectures that have manylinux platform tags (PEP 600 uses the `uname -m` name).
KNOWN_ARCHITECTURES = frozenset({"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x", "riscv64"})
ARCHITECTURE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}

# PEP 600 legacy aliases: manylinux1 is glibc 2.5, manylinux2010 is 2.12 and
# manylinux2014 is 2.17. manylinux1 and manylinux2010 exist for x86_64 and i686 only.
LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
LEGACY_MANYLINUX_ARCHITECTURES = {
    "manylinux1": frozenset({"x86_64", "i686"}),
    "manylinux2010": frozenset({"x86_64", "i686"}),
    "manylinux2014": frozenset({"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le", "s390x"}),
}

_MANYLINUX_RE = re.compile(r"^manylinux_(\d+)_(\d+)_(.+)$")
_LEGACY_RE = re.compile(r"^(manylinux1|manylinux2010|manylinux2014)_(.+)$")
_MUSLLINUX_RE = re.compile(r"^musllinux_(\d+)_(\d+)_(.+)$")
_CPYTHON_ABI_RE = re.compile(r"^cp(\d)(\d+)([a-z]*)$")
_PY_INTERPRETER_RE = re.compile(r"^(py|cp)(\d)(\d*)$")
_SOURCE_SUFFIXES = (".tar.gz", ".zip", ".tar.bz2", ".tar.xz", ".tgz")

IMPLEMENTATION_NAMES = {"cp": "CPython", "pp": "PyPy", "ip": "IronPython", "jy": "Jython", "gp": "GraalPy"}


class TargetError(ValueError):
    """Invalid target description. `key` names the [target] field."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class TargetSpec:
    """The interpreter and platform that the wheelhouse is installed on."""

    python: str = "3.11"
    implementation: str = "cpython"
    platform: str = "linux"
    libc: str = "glibc"
    glibc: str = "2.36"
    arch: str = "x86_64"
    portable: bool = False
    free_threaded: bool = False

    def __post_init__(self) -> None:
        if not re.fullmatch(r"3\.\d+(\.\d+)?", self.python):
            message = f'invalid [target] python {self.python!r}: expected MAJOR.MINOR such as "3.12"'
            raise TargetError("python", message)
        # NOTE: only CPython on glibc Linux is modelled. PyPy, musl and other systems raise here.
        for key, value, supported in (
            ("implementation", self.implementation, "cpython"),
            ("platform", self.platform, "linux"),
            ("libc", self.libc, "glibc"),
        ):
            if value != supported:
                raise TargetError(key, f'unsupported [target] {key} {value!r}: only "{supported}" is supported')
        if not re.fullmatch(r"2\.\d+", self.glibc):
            raise TargetError("glibc", f'invalid [target] glibc {self.glibc!r}: expected a version such as "2.36"')
        if self.normalized_arch not in KNOWN_ARCHITECTURES:
            known = ", ".join(sorted(KNOWN_ARCHITECTURES))
            raise TargetError("arch", f"unsupported [target] arch {self.arch!r}: expected one of {known}")

    @property
    def python_version(self) -> tuple[int, int]:
        major, minor = self.python.split(".")[:2]
        return int(major), int(minor)

    @property
    def glibc_version(self) -> tuple[int, int]:
        major, minor = self.glibc.split(".")
        return int(major), int(minor)

    @property
    def normalized_arch(self) -> str:
        return ARCHITECTURE_ALIASES.get(self.arch, self.arch)

    @property
    def interpreter(self) -> str:
        """The CPython interpreter tag, such as cp312."""
        major, minor = self.python_version
        return f"cp{major}{minor}"

    @property
    def abi(self) -> str:
        """The ABI tag of a default CPython build (pymalloc "m" before 3.8, "t" for free-threaded)."""
        if self.python_version < (3, 8):
            return f"{self.interpreter}m"
        return f"{self.interpreter}t" if self.free_threaded else self.interpreter

    def describe(self) -> str:
        build = " free-threaded" if self.free_threaded else ""
        return f"CPython {self.python}{build} on Linux {self.normalized_arch} with glibc {self.glibc}"


@dataclass(frozen=True)
class WheelVerdict:
    """Whether one wheel file installs on the target.

    `reason` explains a failure or a local-only wheel and ends with the fix, which
    `fix` repeats on its own for callers that show it separately.
    """

    filename: str
    ok: bool
    reason: str
    matched_tag: str | None
    name: str | None
    version: str | None
    build_tag: str | None
    local_only: bool = False
    fix: str = ""


def manylinux_platforms(target: TargetSpec) -> list[str]:
    """List manylinux platform tags from the target's glibc down to the oldest, newest first.

    Each legacy alias follows the PEP 600 tag that it is equal to, as pip orders them.
    """
    arch = target.normalized_arch
    major, newest_minor = target.glibc_version
    # As in packaging.tags, only x86_64 and i686 go below glibc 2.17, which is the
    # manylinux2014 baseline of the other architectures.
    oldest_minor = 5 if arch in {"x86_64", "i686"} else 17
    aliases = {
        minimum: name for name, minimum in LEGACY_MANYLINUX.items() if arch in LEGACY_MANYLINUX_ARCHITECTURES[name]
    }
    platforms = []
    for minor in range(newest_minor, oldest_minor - 1, -1):
        platforms.append(f"manylinux_{major}_{minor}_{arch}")
        if (major, minor) in aliases:
            platforms.append(f"{aliases[(major, minor)]}_{arch}")
    return platforms


def platform_tags(target: TargetSpec, include_local: bool = True) -> list[str]:
    """List the target's platform tags, most specific first, with linux_<arch> last when included."""
    platforms = manylinux_platforms(target)
    if include_local:
        platforms.append(f"linux_{target.normalized_arch}")
    return platforms


@functools.lru_cache(maxsize=32)
def supported_tags(target: TargetSpec) -> tuple[Tag, ...]:
    """Return every tag that the target accepts, in pip's order of preference."""
    platforms = platform_tags(target)
    tags = list(cpython_tags(target.python_version, [target.abi], platforms))
    tags.extend(compatible_tags(target.python_version, target.interpreter, platforms))
    return tuple(tags)


@functools.lru_cache(maxsize=32)
def _tag_ranks(target: TargetSpec) -> dict[Tag, int]:
    return {tag: rank for rank, tag in enumerate(supported_tags(target))}


def marker_environment(target: TargetSpec) -> dict[str, str]:
    """Return PEP 508 marker values for the target interpreter."""
    major, minor = target.python_version
    # NOTE: with a MAJOR.MINOR target the patch level is unknown and taken as 0, so
    # python_full_version markers that name a patch release may evaluate wrongly.
    full_version = target.python if target.python.count(".") == 2 else f"{major}.{minor}.0"
    return {
        "implementation_name": "cpython",
        "implementation_version": full_version,
        "os_name": "posix",
        "platform_machine": target.normalized_arch,
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": "Linux",
        "platform_version": "",
        "python_full_version": full_version,
        "python_version": f"{major}.{minor}",
        "sys_platform": "linux",
    }


def check_wheel(filename: str | os.PathLike[str], target: TargetSpec) -> WheelVerdict:
    """Decide whether the wheel named `filename` installs on `target`, with a fix when it does not."""
    basename = os.path.basename(os.fspath(filename))
    if basename.endswith(_SOURCE_SUFFIXES):
        message = (
            f"{basename} is a source distribution, and the offline install accepts only wheels (--only-binary :all:)"
        )
        fix = "build it into a wheel for the target with `pip wheel` and put the wheel in the wheelhouse"
        return _failed(basename, message, fix)
    try:
        name, version, build, wheel_tags = parse_wheel_filename(basename)
    except (InvalidWheelFilename, InvalidVersion) as error:
        message = f"{error}; a wheel is named NAME-VERSION[-BUILD]-PYTHON-ABI-PLATFORM.whl"
        return _failed(basename, message, "rebuild it with `pip wheel` or remove it from the wheelhouse")

    build_tag = f"{build[0]}{build[1]}" if build else None
    ranks = _tag_ranks(target)
    matches = sorted((tag for tag in wheel_tags if tag in ranks), key=ranks.__getitem__)
    if not matches:
        message, fix = explain_mismatch(wheel_tags, target)
        return _failed(basename, message, fix, name, str(version), build_tag)

    best = matches[0]
    if best.platform.startswith("linux_"):
        return _local_wheel_verdict(basename, best, target, name, str(version), build_tag)
    return WheelVerdict(basename, True, "", str(best), name, str(version), build_tag)


def _failed(
    basename: str,
    message: str,
    fix: str,
    name: str | None = None,
    version: str | None = None,
    build_tag: str | None = None,
) -> WheelVerdict:
    return WheelVerdict(basename, False, f"{message}: {fix}", None, name, version, build_tag, fix=fix)


def _local_wheel_verdict(
    basename: str, tag: Tag, target: TargetSpec, name: str, version: str, build_tag: str | None
) -> WheelVerdict:
    # A linux_<arch> wheel was built on some host and never repaired, so it links
    # against that host's shared libraries and is only known to work there.
    message = (
        f"{basename} is an unrepaired {tag.platform} wheel that installs only on a host like the one that built it"
    )
    if target.portable:
        fix = "repair it with `auditwheel repair` so it becomes a manylinux wheel, or set [target] portable = false"
        reason = f"{message}, but [target] portable = true: {fix}"
        return WheelVerdict(basename, False, reason, str(tag), name, version, build_tag, fix=fix)
    fix = "run `auditwheel repair` on it to make it portable"
    reason = f"{message} (same distribution and system libraries): {fix}"
    return WheelVerdict(basename, True, reason, str(tag), name, version, build_tag, local_only=True, fix=fix)


def explain_mismatch(wheel_tags: frozenset[Tag], target: TargetSpec) -> tuple[str, str]:
    """Return (problem, fix) for a wheel with no supported tag, from its tag with the fewest mismatches."""
    supported = supported_tags(target)
    pairs = {(tag.interpreter, tag.abi) for tag in supported}
    platforms = {tag.platform for tag in supported}

    best_issues: list[tuple[str, str]] | None = None
    for tag in sorted(wheel_tags, key=str):
        issues = []
        if (tag.interpreter, tag.abi) not in pairs:
            issues.append(_explain_interpreter(tag, target))
        if tag.platform not in platforms:
            issues.append(_explain_platform(tag.platform, target))
        if not issues:
            issues.append((f"tag {tag} is not supported by {target.describe()}", "rebuild the wheel for the target"))
        if best_issues is None or len(issues) < len(best_issues):
            best_issues = issues
    assert best_issues is not None  # parse_wheel_filename never returns an empty tag set
    return ", and ".join(problem for problem, _ in best_issues), "; ".join(fix for _, fix in best_issues)


def _explain_interpreter(tag: Tag, target: TargetSpec) -> tuple[str, str]:
    interpreter, abi = tag.interpreter, tag.abi
    prefix = interpreter[:2]
    if prefix not in {"cp", "py"}:
        implementation = IMPLEMENTATION_NAMES.get(prefix, prefix)
        problem = f"built for {implementation} ({interpreter}-{abi}) but the target is CPython {target.python}"
        return problem, "use a CPython wheel of this release, or rebuild the wheelhouse with CPython"

    abi_match = _CPYTHON_ABI_RE.match(abi)
    if abi_match and "t" in abi_match.group(3) and not target.free_threaded:
        problem = (
            f"built for the free-threaded CPython ABI ({abi}) but the target is a regular (GIL) CPython {target.python}"
        )
        return problem, f"use the {interpreter}-{interpreter} wheel of this release instead"
    if abi == "abi3" and target.free_threaded:
        problem = f"built for the stable ABI (abi3), which the free-threaded CPython {target.python} cannot load"
        return problem, f"use a {target.abi} wheel of this release"

    version = _interpreter_version(interpreter)
    python_fix = "rebuild the wheelhouse for the target, or set [target] python = \"{}\" if the image has that Python"
    if abi == "abi3" and version is not None and len(version) == 2:
        problem = (
            f"built for the stable ABI of CPython {version[0]}.{version[1]} and newer ({interpreter}-abi3) "
            f"but the target is CPython {target.python}"
        )
        fix = (
            f'pin an older release of this project, or set [target] python = "{version[0]}.{version[1]}" '
            "if the image has that Python"
        )
        return problem, fix
    if version is not None and version[0] != target.python_version[0]:
        problem = f"built for Python {version[0]} only ({interpreter}) but the target is CPython {target.python}"
        return problem, "pin a release of this project that supports Python 3"
    if version is not None and len(version) == 2 and version != target.python_version:
        problem = f"built for {interpreter} but the target is CPython {target.python}"
        return problem, python_fix.format(f"{version[0]}.{version[1]}")
    problem = f"interpreter and ABI {interpreter}-{abi} do not match the target CPython {target.python} ({target.abi})"
    return problem, f"rebuild the wheel for {target.interpreter}-{target.abi}"


def _interpreter_version(interpreter: str) -> tuple[int, ...] | None:
    match = _PY_INTERPRETER_RE.match(interpreter)
    if not match:
        return None
    major, minor = match.group(2), match.group(3)
    return (int(major), int(minor)) if minor else (int(major),)


def _explain_platform(platform: str, target: TargetSpec) -> tuple[str, str]:
    arch = target.normalized_arch
    described = f"the target is {target.describe()}"
    required = _manylinux_requirement(platform)
    if required is not None:
        (major, minor), wheel_arch = required
        if wheel_arch != arch:
            return f"built for {wheel_arch} ({platform}) but {described}", f"use the {arch} wheel, or set [target] arch"
        if (major, minor) > target.glibc_version:
            problem = f"built for glibc {major}.{minor} or newer ({platform}) but the target has glibc {target.glibc}"
            fix = (
                f'use a wheel for glibc {target.glibc} or older, or set [target] glibc = "{major}.{minor}" '
                "if the image has it"
            )
            return problem, fix
        problem = f"platform tag {platform} is not defined for {arch} (PEP 600 keeps legacy aliases for some only)"
        return problem, f"use a manylinux_2_N_{arch} wheel"
    if _MUSLLINUX_RE.match(platform):
        return f"built for musl libc ({platform}) but the target uses glibc", "use the manylinux wheel of this release"
    if platform.startswith("linux_"):
        return f"built for {platform.removeprefix('linux_')} ({platform}) but {described}", f"rebuild it on {arch}"
    if platform.startswith("win"):
        system = "Windows"
    elif platform.startswith("macosx"):
        system = "macOS"
    else:
        system = platform
    problem = f"built for {system} ({platform}) but {described}"
    return problem, "pin a release that ships a manylinux wheel, or build the wheel from source for the target"


def _manylinux_requirement(platform: str) -> tuple[tuple[int, int], str] | None:
    match = _MANYLINUX_RE.match(platform)
    if match:
        return (int(match.group(1)), int(match.group(2))), match.group(3)
    legacy = _LEGACY_RE.match(platform)
    if legacy:
        return LEGACY_MANYLINUX[legacy.group(1)], legacy.group(2)
    return None

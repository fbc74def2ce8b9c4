"""Resolve the requirements with uv, and turn its pylock.toml into a Plan.

pip resolves one package at a time and spends most of a cold build parsing
index pages and downloading whole wheels just to read their metadata. uv
resolves the same requirement files in a fraction of that time. The phase
(uvphase.py) then fetches and builds what uv chose, and has pip resolve the
finished wheelhouse offline: only when pip would install exactly those files
is uv's choice kept. Otherwise pip resolves again, online, and its result
replaces uv's.

uv reads neither pip's configuration nor, here, its own (`--no-config`, and no
UV_* variable passes), so the index options of WheelhouseConfig are the only
source of packages, as for pip with `isolate_pip_config`.

Which wheel of a release goes into the plan is chosen as pip chooses it: the
file whose best tag comes first in the interpreter's list of supported tags,
then the higher build number.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from packaging.markers import InvalidMarker, Marker
from packaging.tags import Tag, sys_tags
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from build_suite.errors import WheelhouseError
from build_suite.pipargs import index_options
from build_suite.piprunner import run_streaming
from build_suite.redact import redact
from build_suite.resolve import Artifact, Plan, failure_hint, failure_message, files_use_hashes, url_filename

# pip merges the candidates of every index and takes the best. uv by default
# stops at the first index that has the package, so the strategy is set to pip's.
INDEX_STRATEGY = ("--index-strategy", "unsafe-best-match")


def find_uv() -> str | None:
    """Return the path of the uv executable: the one of the `uv` package, else the first on PATH."""
    try:
        import uv  # type: ignore[import-not-found]

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        return shutil.which("uv")


def unsupported_reason(config: object, *, cross_target: bool, uv_path: str | None) -> str | None:
    """Return why uv cannot resolve for this build, or None when it can.

    pip resolves instead in each of these cases, because uv would not mean
    the same thing as pip there.
    """
    if uv_path is None:
        return "uv is not installed"
    if not getattr(config, "isolate_pip_config", True):
        return "isolate_pip_config is false, and uv does not read pip's configuration"
    if cross_target:
        return "the target Python differs from the host's"
    inputs = tuple(getattr(config, "requirements", ())) + tuple(getattr(config, "constraints", ()))
    if getattr(config, "require_hashes", False) or files_use_hashes(inputs):
        return "the requirements carry --hash values, which pip checks itself"
    return None


def uv_env(base: Mapping[str, str]) -> dict[str, str]:
    """Return `base` without UV_* variables, keeping UV_CACHE_DIR, which only sets where the cache lives."""
    env = {name: value for name, value in base.items() if not name.startswith("UV_") or name == "UV_CACHE_DIR"}
    env["UV_NO_PROGRESS"] = "1"
    return env


def compile_argv(uv_path: str, config: object, lock_path: Path, python: str = sys.executable) -> list[str]:
    """Return the argv of `uv pip compile` that writes the resolution to `lock_path` as pylock.toml.

    `python` is the interpreter whose marker values and tags decide the resolution.
    """
    argv = [uv_path, "pip", "compile", "--no-config", "--no-header", "--format", "pylock.toml"]
    argv += ["--output-file", str(lock_path), "--python", python, *INDEX_STRATEGY]
    # uv's pip interface takes pip's index options under the same names.
    argv += index_options(config)
    for package in getattr(config, "no_binary", ()):
        argv += ["--no-binary", package]
    for package in getattr(config, "only_binary", ()):
        argv += ["--only-binary", package]
    for path in getattr(config, "constraints", ()):
        argv += ["--constraint", str(path)]
    argv += [str(path) for path in getattr(config, "requirements", ())]
    return argv


def tag_priorities(tags: Iterable[Tag] | None = None) -> dict[Tag, int]:
    """Map each supported tag to its rank, 0 for the most preferred (the running interpreter's by default)."""
    ranks: dict[Tag, int] = {}
    for rank, tag in enumerate(sys_tags() if tags is None else tags):
        ranks.setdefault(tag, rank)
    return ranks


def best_wheel(wheels: Sequence[Mapping[str, object]], priorities: Mapping[Tag, int]) -> Mapping[str, object] | None:
    """Return the wheel entry that pip would pick for these tags, or None when no wheel fits."""
    best: tuple[int, tuple[int, str]] | None = None
    chosen = None
    for wheel in wheels:
        filename = _filename(wheel)
        try:
            _, _, build, tags = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            continue
        ranks = [priorities[tag] for tag in tags if tag in priorities]
        if not ranks:
            continue
        # A lower rank wins; among equal ranks, the higher build number, as in pip.
        key = (min(ranks), (-build[0], build[1]) if build else (0, ""))
        if best is None or key < best:
            best, chosen = key, wheel
    return chosen


def parse_pylock(
    data: Mapping[str, object],
    *,
    priorities: Mapping[Tag, int] | None = None,
    no_binary: Sequence[str] = (),
    marker_env: Mapping[str, str] | None = None,
    base: Path | None = None,
) -> Plan:
    """Turn a parsed pylock.toml (PEP 751) into a Plan for the interpreter of `priorities`.

    `base` is the folder of the lock file, against which relative `path`
    entries (files of local find-links folders) resolve.
    Packages whose `marker` is false for `marker_env` are left out. A package
    in `no_binary` (or every package, with ":all:") takes its sdist.
    Raises WheelhouseError when a package has neither a fitting wheel nor an sdist.
    """
    ranks = priorities if priorities is not None else tag_priorities()
    source_only = {canonicalize_name(name) for name in no_binary}
    artifacts = []
    for package in data.get("packages", ()):  # type: ignore[union-attr]
        if not _applies(package, marker_env):
            continue
        name = canonicalize_name(str(package.get("name", "")))
        version = str(package.get("version", ""))
        source_requested = ":all:" in no_binary or name in source_only
        wheel = None if source_requested else best_wheel(package.get("wheels") or (), ranks)
        entry = wheel or package.get("sdist")
        if not isinstance(entry, Mapping):
            raise WheelhouseError(
                f"uv chose {name} {version}, but it has no wheel for this Python and platform, and no sdist",
                'set [wheelhouse] resolver = "pip" to see what pip makes of it',
            )
        filename = _filename(entry)
        hashes = entry.get("hashes") or {}
        artifacts.append(
            Artifact(
                name=name,
                version=version,
                filename=filename,
                url=redact(str(entry.get("url") or _path_url(entry, base))),
                sha256=hashes.get("sha256") if isinstance(hashes, Mapping) else None,
                kind="wheel" if filename.endswith(".whl") else "sdist",
            )
        )
    artifacts.sort(key=lambda a: a.name)
    return Plan(artifacts=tuple(artifacts))


def load_pylock(path: Path, **options: object) -> Plan:
    """Read the pylock.toml at `path` and parse it into a Plan (options as for parse_pylock)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise WheelhouseError(f"cannot read uv's resolution {path}: {error}") from error
    return parse_pylock(data, base=path.parent, **options)  # type: ignore[arg-type]


def resolve_with_uv(
    uv_path: str,
    config: object,
    *,
    env: Mapping[str, str],
    on_line: Callable[[str], None],
    timeout: float,
    stall_timeout: float | None,
    work_dir: Path,
    step: str | None = None,
    cancel: threading.Event | None = None,
) -> Plan:
    """Run `uv pip compile` over the config's requirement files and return its Plan for this interpreter.

    `step` names what is resolved in an error message (by default, the
    requirement files). Setting `cancel` stops uv. Raises WheelhouseError when
    uv fails, times out or stalls, with its last lines.
    """
    folder = Path(tempfile.mkdtemp(prefix=".tmp-uv-", dir=work_dir))
    # uv insists on this file name for the pylock.toml format.
    lock_path = folder / "pylock.toml"
    try:
        argv = compile_argv(uv_path, config, lock_path)
        result = run_streaming(
            argv, env=uv_env(env), on_line=on_line, timeout=timeout, stall_timeout=stall_timeout, cancel=cancel
        )
        if result.interrupted:
            raise KeyboardInterrupt
        if not result.ok:
            if step is None:
                step = "resolving the requirements in " + ", ".join(str(path) for path in getattr(config, "requirements", ()))
            raise WheelhouseError(failure_message(step, result, tool="uv"), failure_hint(result, "uv"))
        return load_pylock(lock_path, no_binary=tuple(getattr(config, "no_binary", ())))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _applies(package: Mapping[str, object], marker_env: Mapping[str, str] | None) -> bool:
    text = package.get("marker")
    if not text:
        return True
    try:
        return Marker(str(text)).evaluate(dict(marker_env) if marker_env is not None else None)
    except InvalidMarker as error:
        raise WheelhouseError(f"uv wrote a marker that cannot be read for {package.get('name')}: {error}") from error


def _filename(entry: Mapping[str, object]) -> str:
    if entry.get("name"):
        return str(entry["name"])
    return url_filename(str(entry.get("url") or entry.get("path") or ""))


def _path_url(entry: Mapping[str, object], base: Path | None) -> str:
    path = entry.get("path")
    if not path:
        return ""
    return Path(os.path.abspath(Path(base or Path.cwd()) / str(path))).as_uri()

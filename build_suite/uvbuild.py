"""Build sdists with uv, and fetch their build requirements, when uv resolved the wheelhouse.

pip builds each sdist in a fresh environment that a second pip first installs
setuptools into, which costs about a second per sdist before the backend runs.
uv links the build requirements from its cache instead. The backend, its
version and the sdist are the same, so the wheel has the same files. The
build requirements are still kept in `build-deps/`, so a later build works
without the index.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from build_suite.errors import WheelhouseError
from build_suite.manifest import is_readable_zip
from build_suite.pipargs import index_options
from build_suite.piprunner import RunResult, run_streaming
from build_suite.resolve import failure_hint, failure_message
from build_suite.uvresolve import INDEX_STRATEGY, resolve_with_uv, uv_env
from build_suite.wheelfetch import TEMP_PREFIX, PipContext, download_url, single_file, temp_path


def run_uv(uv_path: str, context: PipContext, label: str, *arguments: str) -> RunResult:
    """Run one uv command with the phase's deadline, stall limit and cancel flag, streaming its lines.

    Raises Cancelled when the phase stops or its deadline passes during the run, as PipContext.run does.
    """
    context.check()
    context.count_run()
    result = run_streaming(
        [uv_path, *arguments],
        env=uv_env(context.env),
        on_line=lambda line: context.on_line(label, line),
        timeout=max(1.0, context.remaining()),
        stall_timeout=context.stall_timeout,
        cancel=context.cancel,
    )
    context.check()
    return result


def build_argv(sdist: Path, out_dir: Path, config: object, python: str = sys.executable) -> list[str]:
    """Return the arguments of `uv build` that build `sdist` into a wheel in `out_dir`."""
    arguments = ["build", "--no-config", "--wheel", "--python", python, "--out-dir", str(out_dir)]
    return [*arguments, *INDEX_STRATEGY, *index_options(config), str(sdist)]


def uv_build_wheel(uv_path: str, sdist: Path, folder: Path, context: PipContext, label: str) -> tuple[Path, str]:
    """Build `sdist` with uv into a temporary path in `folder`; return that path and the wheel's file name.

    The caller moves the wheel into place. Raises WheelhouseError when the build fails.
    """
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))
    try:
        result = run_uv(uv_path, context, label, *build_argv(sdist, work, context.config))
        if not result.ok:
            raise WheelhouseError(failure_message(f"building {label}", result, tool="uv"), failure_hint(result, "uv"))
        wheel = single_file(work, ".whl", label)
        if not is_readable_zip(wheel):
            raise WheelhouseError(f"uv built an unreadable wheel {wheel.name} for {label}")
        temp = temp_path(folder, wheel.name)
        os.replace(wheel, temp)
        return temp, wheel.name
    finally:
        shutil.rmtree(work, ignore_errors=True)


def uv_download_build_deps(
    uv_path: str, requires: Sequence[str], folder: Path, context: PipContext, label: str, jobs: int = 4
) -> list[str]:
    """Resolve `requires` with uv and download their wheels into `folder`; return the new file names.

    Every file is checked against the sha256 in uv's resolution and moved in
    whole, so `folder` never contains a partial wheel.
    """
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=folder))
    try:
        requires_file = work / "requires.txt"
        requires_file.write_text("".join(f"{text}\n" for text in requires), encoding="utf-8")
        # The same index options as the wheelhouse, and wheels only, as pip's build isolation installs them.
        config = dataclasses.replace(
            context.config, requirements=(requires_file,), constraints=(), no_binary=(), only_binary=(":all:",)
        )
        context.check()
        context.count_run()
        try:
            plan = resolve_with_uv(
                uv_path, config, env=context.env, on_line=lambda line: context.on_line(label, line),
                timeout=max(1.0, context.remaining()), stall_timeout=context.stall_timeout, work_dir=work,
                step=f"resolving the build requirements of {label}", cancel=context.cancel,
            )
        except WheelhouseError:
            # A run stopped by the phase raises Cancelled, not the failure that stopping it caused.
            context.check()
            raise
        missing = [a for a in plan.artifacts if not (folder / a.filename).exists()]
        with ThreadPoolExecutor(max(1, jobs), thread_name_prefix="wheelhouse-build-deps-fetch") as pool:
            downloads = [
                pool.submit(download_url, a.url, folder / a.filename, sha256=a.sha256, context=context) for a in missing
            ]
            for download in downloads:
                download.result()
        added = [a.filename for a in missing]
        for filename in added:
            if not is_readable_zip(folder / filename):
                raise WheelhouseError(f"the build requirement {filename} of {label} is not a readable wheel")
        return added
    finally:
        shutil.rmtree(work, ignore_errors=True)

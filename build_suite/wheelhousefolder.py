"""The wheelhouse folder's own state: reuse checks, verification, pruning and the build requirement records.

FolderSteps is a base class of the phase in wheelhouse.py. Its methods use
the phase's `output`, `config`, `jobs`, `records`, `reused`, `removed`,
`started`, `estimated_total`, `first_estimate`, `_emit` and `_result`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from packaging.utils import canonicalize_name, canonicalize_version

from build_suite.errors import WheelhouseError
from build_suite.manifest import Manifest, WheelRecord, check_file, check_records, is_readable_zip, record_for_file
from build_suite.resolve import Plan
from build_suite.sdistbuild import BUILD_DEPS_FOLDER, SDIST_FOLDER, build_requires, has_build_deps
from build_suite.wheelstatus import WheelhouseResult


class FolderSteps:
    """The steps of the wheelhouse phase that read or prune the output folder."""

    def _try_reuse(self, manifest: Manifest | None, fingerprint_value: str) -> WheelhouseResult | None:
        """Return a "reused" result when the folder already matches the inputs, else None."""
        if manifest is None:
            self._emit("check", "no valid wheelhouse manifest: resolving")
            return None
        if manifest.fingerprint != fingerprint_value:
            self._emit("check", "requirements, constraints, target or pip options changed: resolving")
            return None
        self.estimated_total = self.first_estimate = 1.0
        problems = check_records(self.output, manifest.wheels, jobs=self.jobs)
        problems.update(check_records(self.output / BUILD_DEPS_FOLDER, manifest.build_deps, jobs=self.jobs))
        listed = {record.filename for record in manifest.wheels}
        extra = sorted(p.name for p in self.output.glob("*.whl") if p.name not in listed)
        if problems or extra:
            for filename, problem in sorted(problems.items()):
                self._emit("check", f"{filename}: {problem}")
            for filename in extra:
                self._emit("check", f"{filename}: not in the manifest")
            return None
        self.reused = [record.filename for record in manifest.wheels]
        duration = time.monotonic() - self.started
        manifest_path = self.output / "wheelhouse-manifest.json"
        return self._result("reused", manifest.wheels, manifest.build_deps, manifest_path, duration)

    def _verify_existing(self, manifest: Manifest | None) -> dict[str, WheelRecord]:
        """Check the wheels in the folder and remove the bad ones; return the good ones by file name.

        The build requirement wheels in build-deps/ are checked and pruned the same way.
        """
        known = {record.filename: record for record in (manifest.wheels if manifest else ())}
        verified: dict[str, WheelRecord] = {}
        for path in sorted(self.output.glob("*.whl")):
            record = known.get(path.name)
            if self._remove_if_bad(path, record, path.name):
                continue
            verified[path.name] = record or record_for_file(path, "reused", 0.0)
        known_deps = {record.filename: record for record in (manifest.build_deps if manifest else ())}
        folder = self.output / BUILD_DEPS_FOLDER
        for path in sorted(folder.glob("*.whl")) if folder.is_dir() else ():
            self._remove_if_bad(path, known_deps.get(path.name), f"{BUILD_DEPS_FOLDER}/{path.name}")
        return verified

    def _remove_if_bad(self, path: Path, record: WheelRecord | None, label: str) -> bool:
        """Remove `path` when it differs from its manifest `record` or is not a readable zip; return whether it was removed.

        `label` names the file in the log and in the removed list.
        """
        problem = check_file(path, record.sha256, record.size) if record else None
        if problem is None and not is_readable_zip(path):
            problem = "not a readable zip archive"
        if problem is None:
            return False
        path.unlink(missing_ok=True)
        self.removed.append(label)
        self._emit("remove", f"removed {label}: {problem}; it will be fetched again")
        return True

    def _repair_build_deps(self) -> None:
        """Fetch the build requirements that a kept sdist lacks, so that it still builds offline."""
        folder = self.output / SDIST_FOLDER
        for sdist in sorted(folder.glob("*")) if folder.is_dir() else ():
            if sdist.name.startswith(".") or not sdist.name.endswith((".tar.gz", ".zip")):
                continue
            try:
                requires = build_requires(sdist)
            except WheelhouseError as error:
                self._emit("check", f"{SDIST_FOLDER}/{sdist.name}: {error.message}; its build requirements are not checked")
                continue
            if not has_build_deps(requires, self.output / BUILD_DEPS_FOLDER):
                self.sdists.ensure_build_deps(requires, sdist.name)

    def _remove_unplanned(self, plan: Plan) -> None:
        keep = {record.filename for record in self.records.values()}
        for path in sorted(self.output.glob("*.whl")):
            if path.name not in keep:
                path.unlink()
                self.removed.append(path.name)
                self._emit("remove", f"removed {path.name}: not in the resolution")

    def _check_matches_plan(self, plan: Plan, wheels: Sequence[WheelRecord]) -> None:
        have = {(canonicalize_name(r.name), canonicalize_version(r.version)) for r in wheels}
        expected = {(a.name, canonicalize_version(a.version)) for a in plan.artifacts}
        missing = sorted(f"{n} {v}" for n, v in expected - have)
        if missing:
            raise WheelhouseError(
                f"the wheelhouse has no wheel for {', '.join(missing)} after the build",
                "run the build again, and report the problem with pip's output if it persists",
            )

    def _build_dep_records(self, manifest: Manifest | None) -> tuple[WheelRecord, ...]:
        folder = self.output / BUILD_DEPS_FOLDER
        if not folder.is_dir():
            return ()
        known = {r.filename: r for r in (manifest.build_deps if manifest else ())}
        records = []
        for path in sorted(folder.glob("*.whl")):
            record = known.get(path.name)
            if record is None or check_file(path, record.sha256, record.size):
                record = record_for_file(path, "downloaded", 0.0)
            records.append(record)
        return tuple(records)

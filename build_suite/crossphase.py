"""The cross-target steps of the wheelhouse phase: two resolves around the container builds, and the image check.

CrossTargetSteps is a base class of the phase in wheelhouse.py. Its methods use
the phase's `builder`, `target`, `config`, `output`, `context`, `records`,
`total`, `phase_name`, `_emit`, `_resolve_once` and `_run_tasks`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

from build_suite.crossbuild import check_image_resolution
from build_suite.errors import WheelhouseError
from build_suite.manifest import WheelRecord
from build_suite.resolve import Artifact, Plan


class CrossTargetSteps:
    """The steps that only a build for a target Python other than the host's runs."""

    def _resolve_for_target(self, verified: Mapping[str, WheelRecord]) -> Plan:
        """Resolve twice for a target Python other than the host's, building the sdists in between.

        The first resolve uses the host's tags, so it can choose sdists, and the
        target's marker values. Requires-Python is checked in the second, which
        chooses binary wheels for the target and the wheels built from the sdists.
        """
        # The host's Requires-Python check is skipped only for another MAJOR.MINOR: for a patch release of
        # the host's (3.11.2 against 3.11.7), it keeps pip from choosing releases for a newer minor whose
        # sdists would be built just for their metadata.
        other_minor = tuple(int(part) for part in self.target.python.split(".")[:2]) != sys.version_info[:2]
        sources = self._resolve_once(verified, ignore_requires_python=other_minor).sources
        # Checked after the first resolve, so that a wheelhouse whose inputs
        # changed always gets resolved, and pip's errors come first.
        if self.builder is None:
            raise WheelhouseError(
                f"the target Python {self.target.python} differs from the host's, and no builder container was given",
                "build with the engine running, so that sdists build and the wheelhouse is checked in the target's image",
            )
        self._build_sources(sources)
        self._emit("resolve", f"resolving binary wheels for the target Python {self.target.python}")
        built = {record.filename: record for record in self.records.values()}
        return self._resolve_once({**verified, **built}, target=True)

    def _build_sources(self, sources: Sequence[Artifact]) -> None:
        """Build the sdists of the first cross-target resolve in the builder container."""
        trees = [artifact.label for artifact in sources if artifact.kind != "sdist"]
        if trees:
            raise WheelhouseError(
                f"cannot build source trees for another Python: {', '.join(trees)}",
                "publish them as sdists or wheels, or set [target] python to the host's Python",
            )
        if sources:
            self.total = len(sources)
            self._run_tasks([("build", artifact) for artifact in sources])

    def _check_in_image(self, plan: Plan) -> None:
        """Raise WheelhouseError unless the image's own pip installs exactly the plan from the wheelhouse, offline."""
        self.phase_name = "checking"
        self._emit("check", f"checking the wheelhouse offline with the pip of {self.builder.image}")
        installs = self.builder.resolve_offline(
            self.output, self.config.requirements, getattr(self.config, "constraints", ()),
            timeout=max(1.0, self.context.remaining()),
        )
        check_image_resolution(self.builder.image, {(a.name, a.version) for a in plan.artifacts}, installs)
        self._emit("check", f"the image's pip installs all {len(installs)} planned wheels offline")

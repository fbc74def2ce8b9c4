"""The uv steps of the wheelhouse phase: a fast resolve with uv, then pip's offline check of the result.

UvSteps is a base class of the phase in wheelhouse.py. Its methods use the
phase's `config`, `target`, `output`, `context`, `records`, `sdists`,
`phase_name`, `_emit`, `_pip_line`, `_tracking`, `_resolve_once`,
`_plan_tasks` and `_run_tasks`.

With `resolver = "uv"`, uv chooses what to fetch and builds the sdists
(uvbuild.py). Once the wheelhouse is complete, pip resolves the same
requirement files against it with no index. When pip would install exactly
the wheels that are there, pip's report becomes the plan. When it would not
(a missing dependency, another file, a conflict), the phase logs the
difference, resolves again with pip, online, and fetches or builds what pip
chose instead, with pip.

NOTE: the offline check proves that pip installs exactly this wheelhouse, which
is what the images do. It does not prove that pip, reading the index, would
have picked the same releases as uv. uv's pip interface picks the newest
release that fits, as pip does, and the tests compare both resolvers on the
demo stack and the real input. Where exact online agreement matters, keep
`resolver = "pip"`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from build_suite.crossbuild import is_cross_target
from build_suite.errors import WheelhouseError
from build_suite.manifest import WheelRecord
from build_suite.resolve import Plan, resolve
from build_suite.status import format_duration
from build_suite.uvresolve import find_uv, resolve_with_uv, unsupported_reason


def plan_differences(plan: Plan, records: Mapping[str, WheelRecord], limit: int = 5) -> list[str]:
    """Describe how the wheels pip would install (`plan`) differ from the wheelhouse's (`records`, by name)."""
    have = {name: record.filename for name, record in records.items()}
    want = {artifact.name: artifact.filename for artifact in plan.artifacts}
    lines = []
    for name in sorted(set(have) | set(want)):
        if name not in want:
            lines.append(f"pip does not need {have[name]}")
        elif name not in have:
            lines.append(f"pip also needs {want[name]}")
        elif have[name] != want[name]:
            lines.append(f"pip chooses {want[name]} instead of {have[name]}")
    if len(lines) > limit:
        lines = lines[:limit] + [f"and {len(lines) - limit} more"]
    return lines


class UvSteps:
    """The steps that run only with `resolver = "uv"`."""

    uv_resolved = False

    def _uv_path(self) -> str | None:
        """Return the uv executable when this build resolves with uv, after saying why not otherwise."""
        if getattr(self.config, "resolver", "pip") != "uv":
            return None
        uv_path = find_uv()
        reason = unsupported_reason(self.config, cross_target=is_cross_target(self.target), uv_path=uv_path)
        if reason is not None:
            self._emit("resolve", f"resolving with pip instead of uv: {reason}")
            return None
        return uv_path

    def _resolve_with_uv(self, uv_path: str) -> Plan:
        self.phase_name = "resolving"
        self._emit("resolve", "resolving the requirements with uv")
        started = time.monotonic()
        self.context.count_run()
        with self._tracking("resolving with uv"):
            plan = resolve_with_uv(
                uv_path,
                self.config,
                env=self.context.env,
                on_line=lambda line: self._pip_line("uv", line),
                timeout=max(1.0, self.context.remaining()),
                stall_timeout=self.context.stall_timeout,
                work_dir=self.output,
                cancel=self.context.cancel,
            )
        self.uv_resolved = True
        self.sdists.uv_path = uv_path
        seconds = time.monotonic() - started
        self._emit("resolve", f"uv resolved {len(plan.artifacts)} distributions in {format_duration(seconds)}", seconds=seconds)
        return plan

    def _confirm_with_pip(self, plan: Plan) -> Plan:
        """Return pip's plan for the finished wheelhouse; after uv, check it offline and fix any difference."""
        if not self.uv_resolved:
            return plan
        self.phase_name = "checking"
        self._emit("check", "checking uv's resolution: pip resolves the wheelhouse offline")
        started = time.monotonic()
        try:
            offline = self._offline_plan()
            differences = plan_differences(offline, self.records)
        except WheelhouseError as error:
            # The last line of pip's output gives the reason, for example a missing distribution.
            offline, differences = None, [error.message.splitlines()[-1].strip()]
        if offline is not None and not differences:
            seconds = time.monotonic() - started
            self._emit("check", f"pip installs the same {len(offline.artifacts)} wheels ({format_duration(seconds)})", seconds=seconds)
            return offline
        self._emit("check", f"pip disagrees with uv ({'; '.join(differences)}): resolving again with pip")
        current = {record.filename: record for record in self.records.values()}
        self.uv_resolved = False
        self.sdists.uv_path = None
        plan = self._resolve_once(current)
        self._run_tasks(self._plan_tasks(plan, current))
        return plan

    def _offline_plan(self) -> Plan:
        self.context.count_run()
        with self._tracking("checking with pip"):
            return resolve(
                self.config,
                pip_command=self.context.command,
                env=self.context.env,
                on_line=lambda line: self._pip_line("check", line),
                timeout=max(1.0, self.context.remaining()),
                stall_timeout=self.context.stall_timeout,
                work_dir=self.output,
                local_find_links=[self.output],
                offline=True,
            )

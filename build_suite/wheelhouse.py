"""Build the wheelhouse: every wheel that pip would install for the requirements, in one folder.

The phase runs in this order:

1. Reuse check. When the manifest's input fingerprint matches and every wheel
   still has its recorded sha256, the folder is reused and pip never runs.
2. Verify what is there. Wheels whose sha256 or zip directory is bad are
   removed, so they are fetched or built again.
3. Resolve once with pip (resolve.py). The folder's verified wheels are offered
   to pip as find-links, so a built sdist is not built again just for its metadata.
   With `resolver = "uv"`, uv resolves instead (uvphase.py) and builds the
   sdists (uvbuild.py). After step 4, pip resolves the finished wheelhouse
   offline: its report must name exactly the wheels that are there, or pip
   resolves again online and its result replaces uv's.
4. Download the wheels of the plan in parallel, with urllib from the URL and
   sha256 in pip's report and with pip as a fallback. Build the sdists in
   parallel with `pip wheel --no-deps`. Each sdist that pip fetches while it
   resolves is built at once, on another core. The sdists and their build
   requirements are kept in `sdists/` and `build-deps/`, so a later build
   works offline.
5. Remove wheels that the plan does not contain, then write the manifest and
   the timing history.

When the target Python differs from the host's (crossbuild.py), step 3 runs
twice. The first resolve, with the target's marker values, finds the sdists,
which are built in a builder container of the target's base image. The second
resolve picks binary wheels for the target and the container-built wheels. At
the end the target's own pip checks the wheelhouse offline inside the container.

Every step reports through the callbacks, and a heartbeat thread calls
`progress` at least every 3 s, so a live status line never goes silent.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from packaging.utils import canonicalize_name, canonicalize_version

from build_suite import estimate
from build_suite.crossbuild import (
    ContainerBuilder,
    is_cross_target,
    target_options,
    target_pip_command,
    target_pip_env,
)
from build_suite.crossphase import CrossTargetSteps
from build_suite.manifest import Manifest, WheelRecord, fingerprint, load_manifest, save_manifest
from build_suite.pipargs import default_pip_command, describe_options, pip_env
from build_suite.pipoutput import PipEvent, PipOutputParser
from build_suite.resolve import Artifact, Plan, count_requirements, files_use_hashes, included_files, resolve
from build_suite.sdistbuild import SdistBuilder
from build_suite.uvphase import UvSteps
from build_suite.wheelfetch import PipContext, clean_temp, stop_marked_processes
from build_suite.wheelhousefolder import FolderSteps
from build_suite.wheelhousetasks import MAX_SILENCE, RUN_MARKER, TaskSteps
from build_suite.wheelstatus import Progress, Step, WheelhouseResult, progress_text, summary_text

__all__ = [
    "MAX_SILENCE",
    "RUN_MARKER",
    "Progress",
    "Step",
    "WheelhouseResult",
    "build_wheelhouse",
    "input_fingerprint",
    "progress_text",
    "summary_text",
]


def target_fields(target: object) -> dict[str, object]:
    """Return the target's fields as a plain dict for the fingerprint and the manifest."""
    if dataclasses.is_dataclass(target):
        return dataclasses.asdict(target)  # type: ignore[arg-type]
    return dict(vars(target))


def input_fingerprint(config: object, target: object, builder_image: str | None = None) -> str:
    """Return the fingerprint of the inputs that decide the wheelhouse's content.

    `builder_image` is the base image that builds the sdists of a cross-target build.

    NOTE: the pip version is not part of it, because reading it would mean
    running pip. So a pip upgrade alone does not trigger a new resolve.
    """
    requirements = tuple(getattr(config, "requirements", ()))
    files = included_files(requirements + tuple(getattr(config, "constraints", ())))
    base = Path(requirements[0]).parent if requirements else None
    fields = target_fields(target)
    if builder_image:
        fields["builder_image"] = builder_image
    return fingerprint(files, target=fields, options=describe_options(config), pip_version="", base=base)


def build_wheelhouse(
    config: object,
    target: object,
    *,
    on_line: Callable[[str], None] | None = None,
    on_event: Callable[[PipEvent | Step], None] | None = None,
    history_path: Path | None = None,
    progress: Callable[[Progress], None] | None = None,
    pip_command: Sequence[str] | None = None,
    pip_extra_env: Mapping[str, str] | None = None,
    builder: ContainerBuilder | None = None,
) -> WheelhouseResult:
    """Fill `config.output` with the wheels that pip would install for the config's requirements.

    `on_line` receives each output line of pip and uv, prefixed with the
    "[label] " of its task. `on_event` receives the parsed pip events and each
    Step of the phase, which carries the phase's own messages.
    `pip_command` replaces `python -m pip` of the running interpreter (for a
    cross-target build: crossbuild.target_pip_command), and `pip_extra_env`
    sets variables that survive the pip config isolation (for example
    PIP_CACHE_DIR). `builder` is required when the target Python differs from
    the host's, and builds the sdists in a container of the target's image.
    Raises WheelhouseError when pip fails, a download does not match its
    sha256, a builder is missing or the phase passes `config.timeout`.
    """
    phase = _Phase(config, target, on_line, on_event, history_path, progress, pip_command, pip_extra_env, builder)
    return phase.run()


class _Phase(TaskSteps, FolderSteps, CrossTargetSteps, UvSteps):
    """The state of one run of the wheelhouse phase."""

    def __init__(self, config, target, on_line, on_event, history_path, progress, pip_command, pip_extra_env,
                 builder) -> None:
        self.config = config
        self.target = target
        self.output = Path(config.output)
        self.cross = is_cross_target(target)
        self.builder = builder if self.cross else None
        if self.cross:
            pip_extra_env = {**target_pip_env(target), **(pip_extra_env or {})}
            pip_command = pip_command or target_pip_command()

        self.on_line = on_line or (lambda line: None)
        self.on_event = on_event or (lambda event: None)
        self.on_progress = progress or (lambda snapshot: None)
        self.history_path = Path(history_path) if history_path else None
        self.history = estimate.load_history(self.history_path)

        self.started = time.monotonic()
        self.deadline = self.started + float(config.timeout)
        self.jobs = max(1, int(getattr(config, "jobs", 4)))
        # One build more than the cores: each build also waits on process start-up, downloads and the disk.
        self.build_jobs = max(1, min(self.jobs, (os.cpu_count() or 1) + 1))

        self.run_id = f"{os.getpid()}-{time.time_ns()}"
        env = pip_env(isolate=bool(getattr(config, "isolate_pip_config", True)), extra=pip_extra_env)
        env[RUN_MARKER] = self.run_id
        self.context = PipContext(
            command=tuple(pip_command or default_pip_command()),
            env=env,
            config=config,
            deadline=self.deadline,
            stall_timeout=getattr(config, "stall_timeout", None),
            on_line=self._pip_line,
            target_options=tuple(target_options(target)) if self.cross else (),
        )

        # The fields below are shared with the worker threads, which change them under self.lock.
        self.parsers: dict[str, PipOutputParser] = {}
        self.lock = threading.Lock()
        self.publish_lock = threading.Lock()
        self.phase_name = "checking"
        self.done = 0
        self.total = 0
        self.running: dict[str, float] = {}
        self.estimated_total: float | None = None
        # The estimate shown before the build, which the closing line compares with the actual time.
        self.first_estimate: float | None = None
        self.records: dict[str, WheelRecord] = {}
        self.downloaded: list[str] = []
        self.built: list[str] = []
        self.reused: list[str] = []
        self.removed: list[str] = []
        self.pending_tasks: dict[str, estimate.Task] = {}
        self.running_tasks: dict[estimate.Task, float] = {}

    # -- reporting ---------------------------------------------------------

    def _emit(self, kind: str, text: str, package: str | None = None, seconds: float | None = None) -> None:
        self.on_event(Step(kind, text, package, seconds))
        self._publish()

    def _pip_line(self, label: str, line: str) -> PipEvent:
        with self.lock:
            parser = self.parsers.setdefault(label, PipOutputParser())
        self.on_line(f"[{label}] {line}")
        event = parser.feed(line)
        self.on_event(event)
        return event

    def _snapshot(self) -> Progress:
        now = time.monotonic()
        with self.lock:
            running = tuple((label, now - start) for label, start in self.running.items())
            return Progress(self.phase_name, self.done, self.total, running, now - self.started, self.estimated_total)

    def _publish(self) -> None:
        # Worker threads and the heartbeat publish at once. Taking the snapshot and publishing it under one lock
        # keeps an older snapshot from being shown after a newer one, so the counts never step back.
        with self.publish_lock:
            self.on_progress(self._snapshot())

    def _heartbeat(self, stop: threading.Event) -> None:
        # Beating at 80 % of the limit leaves room for sampling the monitors and for a loaded scheduler.
        interval = 0.8 * min(float(getattr(self.config, "heartbeat", MAX_SILENCE)), MAX_SILENCE)
        while not stop.wait(interval):
            self._publish()

    # -- the phase ---------------------------------------------------------

    def run(self) -> WheelhouseResult:
        self.output.mkdir(parents=True, exist_ok=True)
        for name in clean_temp(self.output):
            self._emit("remove", f"removed a temporary file of an interrupted run: {name}")
        stop = threading.Event()
        heartbeat = threading.Thread(target=self._heartbeat, args=(stop,), name="wheelhouse-heartbeat", daemon=True)
        heartbeat.start()
        try:
            return self._run()
        except BaseException:
            self.context.cancel.set()
            stop_marked_processes(RUN_MARKER, self.run_id)
            raise
        finally:
            stop.set()
            clean_temp(self.output)

    def _run(self) -> WheelhouseResult:
        builder_image = self.builder.image if self.builder else None
        fingerprint_value = input_fingerprint(self.config, self.target, builder_image)
        manifest = load_manifest(self.output)
        reused = self._try_reuse(manifest, fingerprint_value)
        if reused is not None:
            return reused

        verified = self._verify_existing(manifest)
        requirement_count = count_requirements(self.config.requirements)
        self.estimated_total = estimate.estimate_before_resolve(self.history, fingerprint_value, requirement_count)
        self.first_estimate = self.estimated_total
        self._emit("estimate", f"estimated {estimate.format_duration(self.estimated_total)}", seconds=self.estimated_total)

        self.downloads = ThreadPoolExecutor(self.jobs, thread_name_prefix="wheelhouse-download")
        self.builds = ThreadPoolExecutor(self.build_jobs, thread_name_prefix="wheelhouse-build")
        self.sdists = SdistBuilder(
            output=self.output,
            config=self.config,
            context=self.context,
            builds=self.builds,
            emit=self._emit,
            pip_line=self._pip_line,
            track=self._tracking,
            container=self.builder,
        )
        try:
            plan = self._resolve(verified)
            tasks = self._plan_tasks(plan, verified)
            self._run_tasks(tasks)
            plan = self._confirm_with_pip(plan)
        except BaseException:
            # Stop the workers' pip runs before waiting for the workers.
            self.context.cancel.set()
            stop_marked_processes(RUN_MARKER, self.run_id)
            raise
        finally:
            self._shutdown_pools()
        self._remove_unplanned(plan)

        wheels = tuple(sorted(self.records.values(), key=lambda r: r.name))
        self._check_matches_plan(plan, wheels)
        if self.builder is not None:
            self._check_in_image(plan)
        self._repair_build_deps()
        build_deps = self._build_dep_records(manifest)
        target = target_fields(self.target) | ({"builder_image": builder_image} if builder_image else {})
        result_manifest = Manifest(
            fingerprint=fingerprint_value,
            wheels=wheels,
            target=target,
            build_deps=build_deps,
            pip_version=plan.pip_version,
        )
        manifest_path = save_manifest(self.output, result_manifest)
        duration = time.monotonic() - self.started
        self.history.total_seconds[fingerprint_value] = round(duration, 3)
        self._save_history()
        status = "built" if not self.reused else "updated"
        return self._result(status, wheels, build_deps, manifest_path, duration)

    def _result(self, status, wheels, build_deps, manifest_path, duration) -> WheelhouseResult:
        result = WheelhouseResult(
            output=self.output,
            status=status,
            wheels=wheels,
            build_deps=build_deps,
            downloaded=tuple(self.downloaded),
            built=tuple(self.built),
            reused=tuple(self.reused),
            removed=tuple(self.removed),
            estimated_seconds=self.first_estimate if self.first_estimate is not None else duration,
            duration=duration,
            pip_runs=self.context.runs,
            manifest_path=manifest_path,
            resolver="uv" if self.uv_resolved else "pip",
        )
        self._emit("done", result.summary, seconds=duration)
        return result

    def _resolve(self, verified: Mapping[str, WheelRecord]) -> Plan:
        # Called first, so that a cross-target build configured for uv logs that pip resolves it.
        uv_path = self._uv_path()
        if self.cross:
            return self._resolve_for_target(verified)
        if uv_path is not None:
            return self._resolve_with_uv(uv_path)
        return self._resolve_once(verified)

    def _resolve_once(
        self, verified: Mapping[str, WheelRecord], *, target: bool = False, ignore_requires_python: bool = False
    ) -> Plan:
        self.phase_name = "resolving"
        self._emit("resolve", "resolving the requirements with pip")
        inputs = tuple(self.config.requirements) + tuple(getattr(self.config, "constraints", ()))
        uses_hashes = bool(getattr(self.config, "require_hashes", False)) or files_use_hashes(inputs)
        # pip checks the --hash values of the requirements against the files it
        # picks, and a locally built wheel never matches an sdist's hash.
        # NOTE: with hashes, a cross-target build cannot offer its container-built wheels, so sdists fail there.
        find_links = [self.output] if verified and not uses_hashes else []
        started = time.monotonic()
        self.context.count_run()
        with self._tracking("resolving"):
            plan = resolve(
                self.config,
                pip_command=self.context.command,
                env=self.context.env,
                on_line=self._resolve_line,
                timeout=max(1.0, self.context.remaining()),
                stall_timeout=self.context.stall_timeout,
                work_dir=self.output,
                local_find_links=find_links,
                target_options=self.context.target_options if target else (),
                ignore_requires_python=ignore_requires_python,
            )
        seconds = time.monotonic() - started
        self._emit("resolve", f"resolved {len(plan.artifacts)} distributions in {estimate.format_duration(seconds)}", seconds=seconds)
        return plan

    def _plan_tasks(self, plan: Plan, verified: Mapping[str, WheelRecord]) -> list[tuple[str, Artifact]]:
        """Record the artifacts already present and return (kind, artifact) for the rest."""
        present_by_key = {(canonicalize_name(r.name), canonicalize_version(r.version)): r for r in verified.values()}
        # Wheels built before the last resolve (cross-target sdists) stay only when that resolve chose them.
        chosen = {artifact.name: artifact.filename for artifact in plan.artifacts}
        for name, record in list(self.records.items()):
            if chosen.get(name) != record.filename:
                del self.records[name]

        tasks: list[tuple[str, Artifact]] = []
        for artifact in plan.artifacts:
            if artifact.name in self.records:
                continue
            record = verified.get(artifact.filename)
            if record is not None and artifact.sha256 not in (None, record.sha256):
                record = None
            if record is None and artifact.kind != "wheel":
                record = present_by_key.get((artifact.name, canonicalize_version(artifact.version)))
            if record is not None:
                self.records[artifact.name] = dataclasses.replace(record, source="reused", seconds=0.0)
                self.reused.append(record.filename)
                continue
            tasks.append(("download" if artifact.kind == "wheel" else "build", artifact))
        self.total = len(plan.artifacts)
        self.done = len(self.records)
        self.pending_tasks = {a.name: estimate.Task(a.name, kind) for kind, a in tasks}
        after = estimate.estimate_tasks(
            list(self.pending_tasks.values()), self.history, download_jobs=self.jobs, build_jobs=self.build_jobs
        )
        self.estimated_total = time.monotonic() - self.started + after
        self._emit(
            "estimate",
            f"{len(tasks)} of {len(plan.artifacts)} wheels to fetch or build, "
            f"estimated {estimate.format_duration(self.estimated_total)} in total",
            seconds=self.estimated_total,
        )
        return tasks

    def _shutdown_pools(self) -> None:
        """Wait for the worker threads, then let the sdist builder drop early builds that the plan did not use."""
        for pool in (self.downloads, self.builds):
            pool.shutdown(wait=True, cancel_futures=True)
        self.sdists.close()

    @contextmanager
    def _tracking(self, label: str) -> Iterator[None]:
        """Show `label` as a running task in the live status while the block runs."""
        with self.lock:
            self.running[label] = time.monotonic()
        try:
            yield
        finally:
            with self.lock:
                self.running.pop(label, None)

    def _resolve_line(self, line: str) -> None:
        """Pass a line of the resolving pip on, and let the sdist builder start early builds."""
        self.sdists.watch_resolve(self._pip_line("resolve", line))

    def _revise_estimate(self) -> None:
        """Replace the estimated total with elapsed time plus what the pending and running tasks need."""
        now = time.monotonic()
        with self.lock:
            pending = list(self.pending_tasks.values())
            running = {task: now - started for task, started in self.running_tasks.items()}
            left = estimate.remaining_seconds(
                pending, running, self.history, download_jobs=self.jobs, build_jobs=self.build_jobs
            )
            self.estimated_total = now - self.started + left

    def _save_history(self) -> None:
        if self.history_path is None:
            return
        try:
            estimate.save_history(self.history_path, self.history)
        except OSError as error:
            self._emit("done", f"could not write the timing history {self.history_path}: {error}")

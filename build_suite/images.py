"""Image builds through the engine's build API, one service at a time.

``build_image`` sends the build context chosen by ``build_suite.dockerignore``, follows the
JSON log stream, reports each step with its time and a heartbeat while a step runs, and
returns an ``ImageResult``. A failing build returns a failed result instead of raising,
so the other services still build.
"""

from __future__ import annotations

import codecs
import json
import logging
import queue
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import docker
import docker.errors
import requests
import urllib3.exceptions

from build_suite.config import Service
from build_suite.dockerignore import ContextError, build_context_tar, dockerfile_in_context
from build_suite.errors import ImageBuildError

logger = logging.getLogger(__name__)

BUILD_ID_LABEL = "build-suite.build-id"
SERVICE_LABEL = "build-suite.service"
# Keys for the labels that callers pass in to build_image.
GIT_COMMIT_LABEL = "build-suite.git-commit"
CONFIG_HASH_LABEL = "build-suite.config-hash"

# Podman prints "STEP 3/7: RUN ...", classic Docker prints "Step 3/7 : RUN ...".
STEP_LINE = re.compile(r"^(?:STEP|Step) (\d+)/(\d+) ?: ?(.*)$")
CACHE_LINE = re.compile(r"^(?:--> |---> )?Using cache\b")
# Layer ids and cache hits carry no information for a reader of a failure.
NOISE_LINE = re.compile(r"^(?:--> |---> )(?:Using cache )?[0-9a-f]{11,64}$")
BUILT_LINE = re.compile(r"^Successfully built ([0-9a-f]{12,64})\s*$")
CONTENT_INSTRUCTIONS = ("RUN", "COPY", "ADD")
LOG_TAIL_LINES = 20


@dataclass(frozen=True)
class ImageResult:
    """Outcome of one service's image build."""

    service: str
    status: str  # "built", "cached" or "failed"
    image_id: str | None
    size: int | None  # bytes, as the engine reports the image
    layers: int | None
    seconds: float
    cache_hits: int
    error: str | None
    log_tail: tuple[str, ...]



class JsonStreamDecoder:
    """Incremental decoder for a stream of concatenated JSON objects.

    A chunk from the engine may hold several objects, half of one, or a split UTF-8
    character, so bytes are buffered until a whole object can be decoded.
    """

    def __init__(self) -> None:
        self._text_decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buffer = ""
        self._json = json.JSONDecoder()

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """Add bytes and return every object completed by them."""
        self._buffer += self._text_decoder.decode(chunk)
        objects = []
        while True:
            text = self._buffer.lstrip()
            if not text:
                self._buffer = ""
                return objects
            try:
                value, end = self._json.raw_decode(text)
            except json.JSONDecodeError:
                # Incomplete object: keep it for the next chunk.
                self._buffer = text
                return objects
            self._buffer = text[end:]
            objects.append(value if isinstance(value, dict) else {"stream": str(value)})

    def leftover(self) -> str:
        """Return undecoded text left when the stream ended, normally empty."""
        return (self._buffer + self._text_decoder.decode(b"", final=True)).strip()


@dataclass
class BuildStep:
    """One Dockerfile instruction as the engine reported it."""

    number: int
    total: int
    instruction: str
    started: float
    finished: float | None = None
    cached: bool = False

    @property
    def is_content_step(self) -> bool:
        return self.instruction.split(" ", 1)[0].upper() in CONTENT_INSTRUCTIONS


@dataclass
class BuildLog:
    """State of one build, updated message by message from the decoded stream."""

    steps: list[BuildStep] = field(default_factory=list)
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_TAIL_LINES))
    image_id: str | None = None
    error: str | None = None

    @property
    def current_step(self) -> BuildStep | None:
        return self.steps[-1] if self.steps else None

    @property
    def cache_hits(self) -> int:
        return sum(1 for step in self.steps if step.cached)

    @property
    def fully_cached(self) -> bool:
        """Whether no RUN, COPY or ADD step ran, because each one came from the cache."""
        content_steps = [step for step in self.steps if step.is_content_step]
        return bool(content_steps) and all(step.cached for step in content_steps)

    def record(self, message: dict[str, Any], now: float) -> list[BuildStep]:
        """Apply one decoded message and return the steps it finished.

        A step finishes when the next one starts. The last step finishes in ``finish``.
        """
        finished: list[BuildStep] = []
        if "error" in message or "errorDetail" in message:
            detail = message.get("errorDetail") or {}
            self.error = str(detail.get("message") or message.get("error") or "unknown build error").strip()
        aux = message.get("aux")
        if isinstance(aux, dict) and isinstance(aux.get("ID"), str):
            self.image_id = aux["ID"]
        stream = message.get("stream")
        if isinstance(stream, str):
            for line in stream.splitlines():
                finished.extend(self._record_line(line.rstrip(), now))
        return finished

    def _record_line(self, line: str, now: float) -> list[BuildStep]:
        if not line.strip():
            return []
        if not NOISE_LINE.match(line):
            self.tail.append(line)
        step_match = STEP_LINE.match(line)
        if step_match:
            finished = self.finish(now)
            number, total, instruction = step_match.groups()
            self.steps.append(BuildStep(int(number), int(total), instruction.strip(), started=now))
            return finished
        if CACHE_LINE.match(line) and self.current_step is not None:
            self.current_step.cached = True
        built_match = BUILT_LINE.match(line)
        if built_match and self.image_id is None:
            self.image_id = built_match.group(1)
        return []

    def finish(self, now: float) -> list[BuildStep]:
        """Mark the running step finished and return it, if one is running."""
        step = self.current_step
        if step is None or step.finished is not None:
            return []
        step.finished = now
        return [step]


def step_start_line(service: str, step: BuildStep) -> str:
    return f"{service}: STEP {step.number}/{step.total}: {step.instruction}"


def step_done_line(service: str, step: BuildStep) -> str:
    elapsed = (step.finished or step.started) - step.started
    outcome = "cached" if step.cached else f"done in {elapsed:.1f}s"
    return f"{service}: STEP {step.number}/{step.total} {outcome}"


def heartbeat_line(service: str, step: BuildStep | None, now: float, build_started: float) -> str:
    if step is None:
        return f"{service}: build still running after {now - build_started:.0f}s, waiting for the first step"
    return (
        f"{service}: STEP {step.number}/{step.total} still running after {now - step.started:.0f}s: "
        f"{step.instruction}"
    )


# --- Base images -------------------------------------------------------------------------

_FROM_LINE = re.compile(r"^FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE)
_ARG_LINE = re.compile(r"^ARG\s+([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$", re.IGNORECASE)
_COPY_FROM = re.compile(r"^(?:COPY|ADD)\s+.*--from=(\S+)", re.IGNORECASE)
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def dockerfile_instructions(text: str) -> list[str]:
    """Return the Dockerfile's instructions with line continuations joined and comments dropped."""
    instructions = []
    pending = ""
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        instructions.append((pending + line).strip())
        pending = ""
    if pending.strip():
        instructions.append(pending.strip())
    return instructions


def _expand(value: str, variables: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(3)
        default = match.group(2)
        found = variables.get(name, "")
        return found if found or default is None else default
    return _VARIABLE.sub(replace, value.strip().strip('"'))


def external_images(text: str, build_args: dict[str, str]) -> list[str]:
    """Return the images a Dockerfile reads that are not its own stages, in order.

    These are the FROM images and the ``--from`` images of COPY and ADD. Variables are
    expanded from the ARGs before the first FROM, overridden by ``build_args``.
    """
    global_args: dict[str, str] = {}
    stage_names: set[str] = set()
    stage_count = 0
    images: list[str] = []
    for instruction in dockerfile_instructions(text):
        arg_match = _ARG_LINE.match(instruction)
        if arg_match and stage_count == 0:
            name, default = arg_match.groups()
            global_args[name] = build_args.get(name, _expand(default or "", global_args))
            continue
        from_match = _FROM_LINE.match(instruction)
        if from_match:
            image = _expand(from_match.group(1), {**global_args, **build_args})
            if image.lower() != "scratch" and image not in stage_names:
                images.append(image)
            if from_match.group(2):
                stage_names.add(from_match.group(2))
            stage_names.add(str(stage_count))
            stage_count += 1
            continue
        copy_match = _COPY_FROM.match(instruction)
        if copy_match:
            source = _expand(copy_match.group(1), {**global_args, **build_args})
            if source not in stage_names:
                images.append(source)
    return list(dict.fromkeys(images))


def missing_images(client: docker.DockerClient, images: list[str]) -> list[str]:
    """Return the images the engine does not have locally."""
    missing = []
    for image in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    return missing


# --- Building ----------------------------------------------------------------------------


def image_labels(build_id: str, service_name: str, labels: Mapping[str, str]) -> dict[str, str]:
    """Return the labels put on a service's image: the caller's plus the build id and service."""
    return {**labels, BUILD_ID_LABEL: build_id, SERVICE_LABEL: service_name}


def service_build_args(service: Service) -> dict[str, str]:
    """Return the build args for a service. BASE_IMAGE comes from ``base_image``.

    An explicit BASE_IMAGE in ``build_args`` overrides it.
    """
    args = {"BASE_IMAGE": service.base_image} if service.base_image else {}
    args.update(service.build_args or {})
    return args


def build_failure_message(service_name: str, step: BuildStep | None, error: str,
                          tail: list[str], hint: str) -> str:
    """Return the failure text for a build: service, failing step, error, last log lines, hint."""
    where = f" at STEP {step.number}/{step.total} ({step.instruction})" if step else ""
    lines = [f"service {service_name!r}: image build failed{where}: {error}"]
    if tail:
        lines.append("Last log lines:")
        lines.extend(f"  {line}" for line in tail)
    lines.append(hint)
    return "\n".join(lines)


def _check_inputs(client: docker.DockerClient, service: Service, build_args: dict[str, str]) -> str:
    """Return the Dockerfile path relative to the context, after checking the base images.

    The engine pulls a missing base image, which cannot work here and would send traffic
    off this machine, so a missing image fails the build before it starts.
    """
    try:
        relative_dockerfile = dockerfile_in_context(Path(service.context), Path(service.dockerfile))
    except ContextError as error:
        raise ImageBuildError(error.message, error.hint) from None
    text = (Path(service.context) / relative_dockerfile).read_text(encoding="utf-8")
    images = external_images(text, build_args)
    unresolved = [image for image in images if not image or "$" in image]
    if unresolved:
        raise ImageBuildError(
            f"a FROM or --from image in {relative_dockerfile} expands to {unresolved[0]!r}",
            "Set the build arg it uses (base_image sets BASE_IMAGE) or give the image name directly.",
        )
    missing = missing_images(client, images)
    if missing:
        raise ImageBuildError(
            f"base image {', '.join(missing)} not found in the engine, and images cannot be pulled",
            "Build or import the base image first, or set base_image to an image the engine has.",
        )
    return relative_dockerfile


def _start_stream(client: docker.DockerClient, build_kwargs: dict[str, Any]) -> queue.Queue:
    """Start the build in a reader thread that queues ("chunk", bytes), ("end", None) or ("error", exc)."""
    events: queue.Queue = queue.Queue()

    def pump() -> None:
        try:
            for chunk in client.api.build(**build_kwargs):
                events.put(("chunk", chunk))
            events.put(("end", None))
        except BaseException as error:  # handed to the caller's thread, which decides
            events.put(("error", error))

    threading.Thread(target=pump, name="image-build-log", daemon=True).start()
    return events


def _follow_build(events: queue.Queue, log: BuildLog, service_name: str,
                  on_progress: Callable[[str], None], heartbeat: float, started: float) -> None:
    decoder = JsonStreamDecoder()
    last_report = time.monotonic()
    while True:
        wait = max(0.05, heartbeat - (time.monotonic() - last_report))
        try:
            kind, payload = events.get(timeout=wait)
        except queue.Empty:
            kind, payload = "idle", None
        now = time.monotonic()
        if kind == "error":
            raise payload
        if kind == "end":
            leftover = decoder.leftover()
            if leftover:
                log.tail.append(leftover)
            return
        if kind == "chunk":
            for message in decoder.feed(payload):
                step_count = len(log.steps)
                for step in log.record(message, now):
                    on_progress(step_done_line(service_name, step))
                    last_report = now
                if len(log.steps) > step_count:
                    on_progress(step_start_line(service_name, log.steps[-1]))
                    last_report = now
        # A step that prints output still gets heartbeats, because its output is not shown.
        if now - last_report >= heartbeat:
            on_progress(heartbeat_line(service_name, log.current_step, now, started))
            last_report = now


def build_image(client: docker.DockerClient, service: Service, *, build_id: str, labels: Mapping[str, str],
                on_progress: Callable[[str], None], heartbeat: float = 3.0) -> ImageResult:
    """Build one service's image and return the result. A failure returns a failed result.

    ``labels`` are the caller's image labels (git commit, config hash). The build id and
    service name are added. ``on_progress`` receives one line per step start and end,
    and a heartbeat line at least every ``heartbeat`` seconds while the build runs.
    """
    started = time.monotonic()
    build_args = service_build_args(service)
    log = BuildLog()

    def failed(error: str, hint: str, step: BuildStep | None = None) -> ImageResult:
        message = build_failure_message(service.name, step, error, list(log.tail), hint)
        logger.warning("build %s: service %s: image build failed: %s", build_id, service.name, error)
        return ImageResult(service.name, "failed", None, None, None, time.monotonic() - started,
                           log.cache_hits, message, tuple(log.tail))

    try:
        relative_dockerfile = _check_inputs(client, service, build_args)
        context_tar = build_context_tar(Path(service.context), Path(service.context) / relative_dockerfile)
    except ImageBuildError as rejected:
        return failed(rejected.message, rejected.hint)
    except (OSError, UnicodeDecodeError, ValueError, docker.errors.DockerException) as error:
        return failed(f"could not prepare the build: {error}", "Check the service's context folder and Dockerfile.")

    on_progress(f"{service.name}: building {service.tag or 'image'} from {relative_dockerfile}")
    build_kwargs = dict(
        fileobj=context_tar, custom_context=True, dockerfile=relative_dockerfile, tag=service.tag or None,
        buildargs=build_args, target=service.target_stage or None,
        labels=image_labels(build_id, service.name, labels), rm=True, forcerm=True, decode=False,
    )
    # NOTE: the build request has no time limit, so a hung engine keeps the heartbeat
    # going until the caller interrupts the build.
    try:
        _follow_build(_start_stream(client, build_kwargs), log, service.name, on_progress, heartbeat, started)
    # urllib3's errors are not wrapped by requests when the engine closes the build stream midway.
    except (docker.errors.DockerException, requests.RequestException, urllib3.exceptions.HTTPError,
            OSError) as error:
        return failed(f"the engine request failed: {error}",
                      "Check that the engine is running and reachable, then rerun the build.", log.current_step)
    finally:
        context_tar.close()

    failing_step = log.current_step
    for step in log.finish(time.monotonic()):
        if log.error is None:
            on_progress(step_done_line(service.name, step))
    if log.error is not None and tagged_despite_cleanup_error(client, service, build_id, log):
        logger.warning("build %s: service %s: the engine failed to delete a build container after tagging "
                       "the image (%s), so the tagged image is used", build_id, service.name, log.error)
        log.error = None
        log.image_id = log.image_id or client.images.get(service.tag).id
    if log.error is not None:
        on_progress(f"{service.name}: build failed")
        return failed(log.error, f"Fix the failing instruction in {relative_dockerfile}, then rerun the build.",
                      failing_step)
    if log.image_id is None:
        return failed("the build log ended without an image id",
                      "Rerun the build. If it fails again, check the engine's log.", failing_step)
    return _built_result(client, service.name, log, started)


def tagged_despite_cleanup_error(client: docker.DockerClient, service: Service, build_id: str,
                                 log: BuildLog) -> bool:
    """Tell whether the build's only error came after the image was tagged, while deleting a build container.

    Podman 4.3.1 reported "identifier is not a container" here when two builds ran at once. The
    image itself is complete when the tag points to an image with this build's id label.
    NOTE: seen only under concurrent builds, so no test forces this path.
    """
    if not service.tag or not any("error deleting build container" in line for line in log.tail):
        return False
    try:
        image = client.images.get(service.tag)
    except docker.errors.DockerException:
        return False
    return (image.labels or {}).get(BUILD_ID_LABEL) == build_id


def _built_result(client: docker.DockerClient, service_name: str, log: BuildLog, started: float) -> ImageResult:
    image_id = log.image_id
    size = layers = None
    try:
        attrs = client.images.get(log.image_id).attrs
        image_id = attrs.get("Id") or image_id
        size = attrs.get("Size")
        layers = len((attrs.get("RootFS") or {}).get("Layers") or [])
    except docker.errors.DockerException as error:
        # NOTE: size and layers stay None when the inspect fails, though the image was built.
        logger.warning("service %s: inspecting built image %s failed: %s", service_name, image_id, error)
    status = "cached" if log.fully_cached else "built"
    return ImageResult(service_name, status, image_id, size, layers, time.monotonic() - started,
                       log.cache_hits, None, tuple(log.tail))

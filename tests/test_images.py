"""Image builds: log-stream decoding, step tracking, and real builds against the engine."""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
import uuid
from pathlib import Path

import pytest

from build_suite.config import Service
from build_suite.images import (
    BUILD_ID_LABEL,
    CONFIG_HASH_LABEL,
    GIT_COMMIT_LABEL,
    SERVICE_LABEL,
    BuildLog,
    JsonStreamDecoder,
    build_image,
    dockerfile_instructions,
    external_images,
    service_build_args,
)

BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"
TEST_LABEL = "build-suite.test"




def make_service(tmp_path: Path, dockerfile: str, name: str = "api", **settings) -> Service:
    context = tmp_path / name
    context.mkdir(parents=True, exist_ok=True)
    (context / "Dockerfile").write_text(textwrap.dedent(dockerfile))
    (context / "app.txt").write_text("app\n")
    return Service(name=name, dockerfile=context / "Dockerfile", context=context,
                       tag=f"localhost/build-suite-test/{name}-{uuid.uuid4().hex[:8]}:latest",
                       base_image=BASE_IMAGE, **settings)


def run_build(client, spec, heartbeat=3.0, labels=None):
    lines: list[str] = []
    result = build_image(client, spec, build_id="images-test", labels={TEST_LABEL: "test_images", **(labels or {})},
                         on_progress=lines.append, heartbeat=heartbeat)
    return result, lines


# --- Stream decoding ---------------------------------------------------------------------


def test_decoder_joins_split_objects():
    payload = b'{"stream":"STEP 1/2: FROM x\\n"}\n{"aux":{"ID":"sha256:abc"}}\n'
    decoder = JsonStreamDecoder()

    objects = []
    for index in range(len(payload)):
        objects.extend(decoder.feed(payload[index:index + 1]))

    assert objects == [{"stream": "STEP 1/2: FROM x\n"}, {"aux": {"ID": "sha256:abc"}}]
    assert decoder.leftover() == ""


def test_decoder_reads_several_objects_per_chunk():
    decoder = JsonStreamDecoder()

    objects = decoder.feed(b'{"stream":"a"}{"stream":"b"}\r\n{"stream":"c"}')

    assert [item["stream"] for item in objects] == ["a", "b", "c"]


def test_decoder_handles_split_utf8_character():
    encoded = json.dumps({"stream": "caf\u00e9 \u2713"}, ensure_ascii=False).encode()
    decoder = JsonStreamDecoder()

    first = decoder.feed(encoded[:-3])
    second = decoder.feed(encoded[-3:])

    assert first == []
    assert second == [{"stream": "caf\u00e9 \u2713"}]


def test_decoder_keeps_incomplete_tail():
    decoder = JsonStreamDecoder()

    decoder.feed(b'{"stream":"ok"}{"stream":"cut')

    assert decoder.leftover() == '{"stream":"cut'


# --- Log tracking ------------------------------------------------------------------------


def test_build_log_tracks_steps_and_cache():
    log = BuildLog()
    log.record({"stream": "STEP 1/3: FROM base\n"}, now=0.0)
    log.record({"stream": "STEP 2/3: COPY . /app\n--> Using cache 0123456789abcdef\n"}, now=1.0)
    finished = log.record({"stream": "Step 3/3 : RUN make\n"}, now=1.5)
    log.record({"stream": "compiling\n"}, now=2.0)
    done = log.finish(now=4.0)

    assert [step.number for step in finished] == [2]
    assert finished[0].cached
    assert done[0].instruction == "RUN make"
    assert done[0].finished - done[0].started == 2.5
    assert log.cache_hits == 1
    assert not log.fully_cached
    assert "compiling" in log.tail
    assert "--> Using cache 0123456789abcdef" not in log.tail


def test_build_log_records_error_and_image_id():
    log = BuildLog()
    log.record({"errorDetail": {"message": "exit status 3\n"}, "error": "exit status 3"}, now=0.0)
    log.record({"aux": {"ID": "sha256:feed"}}, now=0.0)

    assert log.error == "exit status 3"
    assert log.image_id == "sha256:feed"


# --- Dockerfile reading ------------------------------------------------------------------


def test_external_images_expand_args_and_skip_stages():
    text = """\
        # syntax comment
        ARG BASE_IMAGE=localhost/base:1
        ARG TOOLS=localhost/tools:2
        FROM ${BASE_IMAGE} AS build
        RUN make \\
            install
        FROM build AS test
        COPY --from=build /app /app
        COPY --from=$TOOLS /bin/tool /bin/tool
        FROM scratch
        COPY --from=0 /app /app
    """

    images = external_images(textwrap.dedent(text), {"BASE_IMAGE": "localhost/other:3"})

    assert images == ["localhost/other:3", "localhost/tools:2"]


def test_dockerfile_instructions_join_continuations():
    text = "FROM a\nRUN one \\\n  # inner comment\n  two\n"

    assert dockerfile_instructions(text) == ["FROM a", "RUN one two"]


def test_service_build_args_base_image():
    spec = Service(name="s", dockerfile=Path("D"), context=Path("."), tag="t", base_image="img:1",
                       build_args={"EXTRA": "1"})

    assert service_build_args(spec) == {"BASE_IMAGE": "img:1", "EXTRA": "1"}


# --- Real builds -------------------------------------------------------------------------


@pytest.mark.slow
def test_build_then_cached(client, tmp_path):
    spec = make_service(tmp_path, """\
        ARG BASE_IMAGE
        FROM ${BASE_IMAGE}
        COPY app.txt /app/app.txt
        RUN cat /app/app.txt
    """)

    first, first_lines = run_build(client, spec, labels={GIT_COMMIT_LABEL: "abc123", CONFIG_HASH_LABEL: "f00d"})
    second, _ = run_build(client, spec)

    assert first.status == "built", first.error
    assert first.image_id.startswith("sha256:")
    assert first.size > 0
    assert first.layers >= 2
    assert any(re.fullmatch(r"api: STEP 2/\d+: COPY app.txt /app/app.txt", line) for line in first_lines)
    assert any(re.fullmatch(r"api: STEP 3/\d+ done in \d+\.\ds", line) for line in first_lines)
    assert second.status == "cached", second.log_tail
    assert second.cache_hits >= 2
    labels = client.images.get(first.image_id).labels
    assert labels[BUILD_ID_LABEL] == "images-test"
    assert labels[SERVICE_LABEL] == "api"
    assert labels[GIT_COMMIT_LABEL] == "abc123"
    assert labels[CONFIG_HASH_LABEL] == "f00d"


@pytest.mark.slow
def test_build_args_and_target_stage(client, tmp_path):
    spec = make_service(tmp_path, """\
        ARG BASE_IMAGE
        FROM ${BASE_IMAGE} AS first
        ARG GREETING=unset
        RUN echo "first says $GREETING"
        FROM first AS second
        RUN echo "second stage ran"
    """, target_stage="first", build_args={"GREETING": "hello-" + uuid.uuid4().hex[:6]})

    result, _ = run_build(client, spec)

    assert result.status == "built", result.error
    assert f"first says {spec.build_args['GREETING']}" in result.log_tail
    assert "second stage ran" not in result.log_tail


@pytest.mark.slow
def test_heartbeat_during_long_step(client, tmp_path):
    spec = make_service(tmp_path, f"""\
        ARG BASE_IMAGE
        FROM ${{BASE_IMAGE}}
        RUN echo {uuid.uuid4().hex} && sleep 2
    """)

    result, lines = run_build(client, spec, heartbeat=0.5)

    assert result.status == "built", result.error
    assert any("STEP 2/" in line and "still running after" in line for line in lines)


@pytest.mark.slow
def test_failing_step_names_service_and_step(client, tmp_path):
    spec = make_service(tmp_path, """\
        ARG BASE_IMAGE
        FROM ${BASE_IMAGE}
        RUN echo "resolving wheel demo-1.0" && echo "no matching wheel for demo" >&2 && exit 3
    """, name="worker")

    result, lines = run_build(client, spec)

    assert result.status == "failed"
    assert result.image_id is None
    assert "service 'worker'" in result.error
    assert "at STEP 2/" in result.error
    assert "no matching wheel for demo" in result.error
    assert "Fix the failing instruction in Dockerfile" in result.error
    assert "no matching wheel for demo" in result.log_tail
    assert "worker: build failed" in lines


@pytest.mark.slow
def test_missing_base_image_fails_without_pull(client, tmp_path):
    spec = make_service(tmp_path, """\
        ARG BASE_IMAGE
        FROM ${BASE_IMAGE}
    """, name="api")
    spec = dataclasses.replace(spec, base_image="localhost/build-suite/absent:0")

    result, lines = run_build(client, spec)

    assert result.status == "failed"
    assert "localhost/build-suite/absent:0 not found in the engine" in result.error
    assert "Build or import the base image first" in result.error
    assert lines == []


@pytest.mark.slow
def test_dockerfile_outside_context_fails(client, tmp_path):
    spec = make_service(tmp_path, "FROM scratch\n")
    outside = tmp_path / "Dockerfile.outside"
    outside.write_text("FROM scratch\n")
    spec = dataclasses.replace(spec, dockerfile=outside)

    result, _ = run_build(client, spec)

    assert result.status == "failed"
    assert "outside the build context" in result.error


class _StreamOnlyApi:
    """Engine API double that replays recorded build chunks, for a log with no image id."""

    api_version = "1.41"

    def __init__(self, chunks):
        self._chunks = chunks

    def build(self, **kwargs):
        kwargs["fileobj"].read()
        return iter(self._chunks)


class _LocalImages:
    def get(self, name):
        return object()


class _RecordedEngine:
    def __init__(self, chunks):
        self.api = _StreamOnlyApi(chunks)
        self.images = _LocalImages()


def test_log_without_image_id_fails(tmp_path):
    spec = make_service(tmp_path, "FROM localhost/base:1\nRUN true\n")
    chunks = [b'{"stream":"STEP 1/2: FROM localhost/base:1\\n"}{"str', b'eam":"STEP 2/2: RUN true\\n"}']
    engine = _RecordedEngine(chunks)

    result = build_image(engine, spec, build_id="b", labels={}, on_progress=lambda line: None)

    assert result.status == "failed"
    assert "ended without an image id" in result.error
    assert "STEP 2/2: RUN true" in result.error

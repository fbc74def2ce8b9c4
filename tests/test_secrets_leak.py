"""Index credentials never reach any artifact of a build, passed or failed.

Each build gets credentials in three places: the index URLs of the
configuration, an --extra-index-url line of the requirements file and
PIP_INDEX_URL. Some URLs point at a loopback index that serves the packages,
others at a loopback port where nothing listens. Afterwards the test searches
the terminal output, every file under the reports folder (JSON, HTML, JUnit,
build.log, history) and every text file of the wheelhouse for each secret. It
searches again with all whitespace removed, so a secret split by a wrapped
line is found too.
"""

from __future__ import annotations

import re
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from stack import ROOT, build_command, build_env, write_stack

pytest_plugins = ["pytester"]

# A user name this long pushes the password past column 160, where plain output is cut or wrapped.
LONG_USER = "deploy" * 30


def free_port() -> int:
    """Return a loopback port where nothing listens (bound once, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def new_secret(label: str) -> str:
    return f"SECRET{label}{uuid.uuid4().hex}"


def with_credentials(url: str, user: str, secret: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{secret}@{rest}"


def artifact_texts(output: str, report_dir: Path, wheelhouse: Path) -> dict[str, str]:
    """Map every place a build writes text to its content."""
    texts = {"terminal": output}
    for folder in (report_dir, wheelhouse):
        if not folder.exists():
            continue
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix != ".whl":
                texts[str(path)] = path.read_bytes().decode("utf-8", errors="replace")
    return texts


def leaks(texts: dict[str, str], secrets: list[str]) -> list[str]:
    found = []
    for where, text in texts.items():
        squeezed = re.sub(r"\s+", "", text)
        for secret in secrets:
            if secret in text or secret in squeezed:
                found.append(f"{secret[:12]}... in {where}")
    return found


def run(config: Path, report_dir: Path, env: dict[str, str], marker: str) -> subprocess.CompletedProcess:
    return subprocess.run(build_command(config, report_dir, "-m", marker, "-rA", "-vv"), capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def secret_stack(tmp_path: Path, package_index: str, *, requirement: str, isolate: bool
                 ) -> tuple[Path, dict[str, str], list[str]]:
    """Write a stack whose index URLs carry secrets; return its config, build environment and secrets."""
    dead = f"http://127.0.0.1:{free_port()}/simple/"
    secrets = [new_secret(label) for label in ("CONFIG", "EXTRA", "REQFILE", "ENV")]
    index = with_credentials(package_index, LONG_USER, secrets[0])
    extra = with_credentials(dead, "ci", secrets[1])
    requirements = f"--extra-index-url {with_credentials(package_index, 'token', secrets[2])}\n{requirement}\n"
    wheelhouse = (f'extra_index_urls = ["{extra}"]\nisolate_pip_config = {str(isolate).lower()}\n')
    config = write_stack(tmp_path, index, requirements=requirements, wheelhouse=wheelhouse)
    env = build_env(PIP_INDEX_URL=with_credentials(dead, "env", secrets[3]))
    return config, env, secrets


@pytest.mark.slow
@pytest.mark.parametrize("isolate", [True, False], ids=["isolated", "machine-pip-config"])
@pytest.mark.parametrize("requirement, passes", [("bstiny==1.0", True), ("bsmissing==1.0", False)],
                         ids=["passing", "failing"])
def test_index_secrets_never_written(tmp_path: Path, package_index: str, requirement: str, passes: bool,
                                     isolate: bool) -> None:
    config, env, secrets = secret_stack(tmp_path, package_index, requirement=requirement, isolate=isolate)
    report_dir = tmp_path / "reports"
    result = run(config, report_dir, env, "validate or wheelhouse")
    output = result.stdout + result.stderr

    assert result.returncode == (0 if passes else 1), output[-3000:]
    if not passes:
        assert "bsmissing" in output
    assert (report_dir / "build-report.json").is_file()
    assert (report_dir / "build.log").is_file()
    texts = artifact_texts(output, report_dir, config.parent / "wheelhouse")
    assert any(name.endswith("manifest.json") for name in texts) == passes, sorted(texts)
    assert not leaks(texts, secrets)
    # The masked URLs are still there to read, so the search above looked at real index lines.
    assert "****@127.0.0.1" in output or "****@127.0.0.1" in texts[str(report_dir / "build.log")]

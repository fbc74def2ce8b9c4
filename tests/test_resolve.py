"""Tests of pip's argv and environment and of the resolve step (pip's installation report)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from build_suite.config import WheelhouseConfig
from build_suite.errors import WheelhouseError
from build_suite.pipargs import describe_options, index_options, pip_env
from build_suite.resolve import files_use_hashes, included_files, load_report, parse_report, resolve_argv


def test_pip_env_isolates_config() -> None:
    base = {
        "PATH": "/usr/bin",
        "PIP_FIND_LINKS": "/somewhere/wheels",
        "PIP_EXTRA_INDEX_URL": "file:///somewhere/simple",
        "PIP_CONSTRAINT": "/somewhere/constraints.txt",
        "PIP_CONFIG_FILE": "/somewhere/pip.conf",
        "PIP_CERT": "/somewhere/ca.pem",
    }
    env = pip_env(isolate=True, base=base, extra={"PIP_CACHE_DIR": "/cache"})
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert "PIP_FIND_LINKS" not in env
    assert "PIP_EXTRA_INDEX_URL" not in env
    assert "PIP_CONSTRAINT" not in env
    assert env["PIP_CERT"] == "/somewhere/ca.pem"
    assert env["PIP_CACHE_DIR"] == "/cache"
    assert env["PATH"] == "/usr/bin"


def test_pip_env_without_isolation_keeps_config() -> None:
    env = pip_env(isolate=False, base={"PIP_FIND_LINKS": "/w"})
    assert env["PIP_FIND_LINKS"] == "/w"
    assert "PIP_CONFIG_FILE" not in env


def test_index_options_and_redaction() -> None:
    config = WheelhouseConfig(
        requirements=(),
        index_url="https://user:secret@index.invalid/simple",
        extra_index_urls=("https://token@extra.invalid/simple",),
        find_links=("/wheels",),
    )
    assert index_options(config) == [
        "--index-url", "https://user:secret@index.invalid/simple",
        "--extra-index-url", "https://token@extra.invalid/simple",
        "--find-links", "/wheels",
    ]
    described = str(describe_options(config))
    assert "secret" not in described
    assert "token" not in described


def test_included_files_follow_nested_includes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    main = tmp_path / "requirements.txt"
    main.write_text("-r sub/base.txt\n--constraint=pins.txt\nidna\n")
    (tmp_path / "sub" / "base.txt").write_text("--requirement more.txt\n-r ../requirements.txt\n")
    (tmp_path / "sub" / "more.txt").write_text("six\n")
    (tmp_path / "pins.txt").write_text("six==1.17.0\n")
    assert included_files([main]) == [
        main,
        tmp_path / "sub" / "base.txt",
        tmp_path / "pins.txt",
        tmp_path / "sub" / "more.txt",
    ]


def test_hashes_switch_on_require_hashes(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("-r hashed.txt\n")
    hashed = tmp_path / "hashed.txt"
    hashed.write_text("idna==3.10 \\\n    --hash=sha256:" + "0" * 64 + "\n")
    config = WheelhouseConfig(requirements=(plain,))
    assert files_use_hashes([plain])
    assert "--require-hashes" in resolve_argv(config, tmp_path / "r.json", pip_command=("pip",))
    hashed.write_text("idna==3.10\n")
    assert "--require-hashes" not in resolve_argv(config, tmp_path / "r.json", pip_command=("pip",))


def test_resolve_argv_shape(tmp_path: Path) -> None:
    config = WheelhouseConfig(requirements=(tmp_path / "r.txt",), constraints=(tmp_path / "c.txt",), only_binary=(":all:",))
    argv = resolve_argv(config, tmp_path / "report.json", pip_command=("python", "-m", "pip"))
    assert argv[:4] == ["python", "-m", "pip", "install"]
    for option in ("--dry-run", "--ignore-installed", "--no-input"):
        assert option in argv
    assert argv[argv.index("--report") + 1] == str(tmp_path / "report.json")
    assert argv[-4:] == ["-r", str(tmp_path / "r.txt"), "-c", str(tmp_path / "c.txt")]
    assert argv[argv.index("--only-binary") + 1] == ":all:"


def test_parse_report_rejects_other_version() -> None:
    with pytest.raises(WheelhouseError):
        parse_report({"version": "2", "install": []})


def test_parse_report_source_tree_and_hash_forms() -> None:
    report = {
        "version": "1",
        "pip_version": "23.2.1",
        "install": [
            {
                "download_info": {"url": "file:///src/demo", "dir_info": {}},
                "metadata": {"name": "Demo_Pkg", "version": "1.0"},
                "requested": True,
            },
            {
                "download_info": {
                    "url": "https://user:pw@files.invalid/x/idna-3.10-py3-none-any.whl",
                    "archive_info": {"hash": "sha256=" + "a" * 64},
                },
                "metadata": {"name": "idna", "version": "3.10"},
            },
        ],
    }
    plan = parse_report(report)
    demo, idna = plan.artifacts
    assert demo.name == "demo-pkg"
    assert demo.kind == "source"
    assert idna.kind == "wheel"
    assert idna.sha256 == "a" * 64
    assert "pw" not in idna.url
    assert plan.sources == (demo,)


@pytest.mark.slow
def test_parse_real_pip_report(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text('docopt==0.6.2\nanyio==4.6.0\nsix==1.17.0 ; python_version < "3"\n')
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("sniffio==1.3.0\n")
    config = WheelhouseConfig(requirements=(requirements,), constraints=(constraints,))
    report = tmp_path / "report.json"
    argv = resolve_argv(config, report, pip_command=(sys.executable, "-m", "pip"))
    subprocess.run(argv, env=pip_env(isolate=True), check=True, capture_output=True, timeout=300)

    plan = load_report(report)
    by_name = {a.name: a for a in plan.artifacts}
    assert by_name["docopt"].kind == "sdist"
    assert by_name["docopt"].filename == "docopt-0.6.2.tar.gz"
    assert by_name["docopt"].requested
    assert by_name["anyio"].kind == "wheel"
    assert by_name["anyio"].filename.startswith("anyio-4.6.0-")
    assert by_name["sniffio"].version == "1.3.0"
    assert not by_name["sniffio"].requested
    assert "six" not in by_name
    for artifact in plan.artifacts:
        assert artifact.sha256 is not None and len(artifact.sha256) == 64
        assert artifact.url.startswith("https://")
    assert plan.pip_version

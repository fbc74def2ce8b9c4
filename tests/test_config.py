"""Tests of buildsuite.toml loading: valid files load, every kind of broken file gets one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from build_suite.config import DEFAULT_CONFIG, find_cycle, load_config
from build_suite.errors import ConfigError

VALID = """
[project]
name = "shop"
version = "1.2.3"

[target]
python = "3.12"
glibc = "2.28"

[wheelhouse]
requirements = ["requirements.txt"]
timeout = 120

[[base_images]]
name = "localhost/base:1"
suite = "bookworm"

[[services]]
name = "api"
dockerfile = "Dockerfile"
ports = { 8000 = 18000 }
environment = { MODE = "test" }
[services.probe]
kind = "http"
port = 8000
path = "/healthz"

[[services]]
name = "worker"
dockerfile = "Dockerfile"
depends_on = ["api"]
[services.probe]
kind = "command"
command = ["python", "-c", "print(1)"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "requirements.txt").write_text("requests==2.32.5\n")
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


def write_config(folder: Path, text: str) -> Path:
    path = folder / "buildsuite.toml"
    path.write_text(text)
    return path


def load_error(folder: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write_config(folder, text))
    return info.value


def test_valid_config_loads(project: Path) -> None:
    config = load_config(write_config(project, VALID))
    assert config.project.name == "shop"
    assert config.target.python == "3.12"
    assert config.target.glibc == "2.28"
    assert config.wheelhouse.requirements == (project / "requirements.txt",)
    assert config.wheelhouse.timeout == 120.0
    assert config.wheelhouse.resolver == "pip"
    assert config.wheelhouse.output == project / "wheelhouse"
    assert [service.name for service in config.services] == ["api", "worker"]
    api = config.service("api")
    assert api.ports == {8000: 18000}
    assert api.tag == "localhost/shop/api:1.2.3"
    assert api.base_image == "localhost/base:1"
    assert api.probe.kind == "http"
    assert config.service("worker").probe.command == ("python", "-c", "print(1)")
    assert len(config.digest) == 64


def test_find_links_relative_to_config(project: Path) -> None:
    text = VALID.replace("timeout = 120", 'timeout = 120\nfind_links = ["../links", "https://files.invalid/links/", "/abs/links"]')
    (project / "sub").mkdir()
    config = load_config(write_config(project / "sub", text.replace('["requirements.txt"]', '["../requirements.txt"]')
                                      .replace('dockerfile = "Dockerfile"', 'dockerfile = "../Dockerfile"')))
    assert config.wheelhouse.find_links == (str(project / "links"), "https://files.invalid/links/", "/abs/links")


def test_resolver_uv_is_read(project: Path) -> None:
    config = load_config(write_config(project, VALID.replace("timeout = 120", 'timeout = 120\nresolver = "uv"')))
    assert config.wheelhouse.resolver == "uv"


def test_demo_stack_config_loads() -> None:
    config = load_config(DEFAULT_CONFIG)
    assert config.project.name == "demo-stack"
    assert {service.name for service in config.services} >= {"api", "worker"}


BROKEN = [
    ("syntax error", VALID.replace('name = "shop"', 'name = "shop'), "", "invalid TOML"),
    ("unknown key", VALID.replace("timeout = 120", "timeout = 120\ntimout = 5"), "wheelhouse.timout", "unknown key"),
    ("unknown section", VALID + "\n[extras]\nx = 1\n", "extras", "unknown key"),
    ("wrong type", VALID.replace("timeout = 120", 'timeout = "soon"'), "wheelhouse.timeout", "expected a number"),
    ("wrong type in list", VALID.replace('requirements = ["requirements.txt"]', "requirements = [1]"),
     "wheelhouse.requirements", "expected an array of paths"),
    ("bad python version", VALID.replace('python = "3.12"', "python = 3.12"), "target.python",
     'expected a version such as "3.11"'),
    ("missing requirements file", VALID.replace('["requirements.txt"]', '["missing.txt"]'),
     "wheelhouse.requirements[0]", "file not found"),
    ("missing dockerfile", VALID.replace('dockerfile = "Dockerfile"\nports', 'dockerfile = "nope/Dockerfile"\nports'),
     "services[0].dockerfile", "file not found"),
    ("duplicate service", VALID.replace('name = "worker"', 'name = "api"'), "services[1].name",
     "duplicate service name 'api'"),
    ("unknown dependency", VALID.replace('depends_on = ["api"]', 'depends_on = ["db"]'), "services[1].depends_on",
     "unknown service 'db'"),
    ("dependency cycle", VALID.replace('dockerfile = "Dockerfile"\nports', 'dockerfile = "Dockerfile"\ndepends_on = ["worker"]\nports'),
     "services.depends_on", "dependency cycle"),
    ("missing project", VALID.replace('[project]\nname = "shop"\nversion = "1.2.3"\n', ""), "project",
     "missing required key"),
    ("bad probe kind", VALID.replace('kind = "http"', 'kind = "grpc"'), "services[0].probe.kind", "one of"),
    ("unknown resolver", VALID.replace("timeout = 120", 'timeout = 120\nresolver = "poetry"'), "wheelhouse.resolver",
     "one of"),
    ("http probe without port", VALID.replace("port = 8000\n", ""), "services[0].probe.port", "needs the container port"),
    ("bad port", VALID.replace("{ 8000 = 18000 }", "{ 8000 = 70000 }"), "services[0].ports.8000", "host port"),
    ("bad service name", VALID.replace('name = "worker"', 'name = "Worker Two"'), "services[1].name",
     "lowercase name"),
]


@pytest.mark.parametrize("case, text, key, fragment", BROKEN, ids=[case[0] for case in BROKEN])
def test_broken_config_names_file_and_key(project: Path, case: str, text: str, key: str, fragment: str) -> None:
    error = load_error(project, text)
    message = str(error)
    assert str(project / "buildsuite.toml") in message
    assert key in message
    assert fragment in message
    assert error.exit_code == 4


def test_misspelt_required_key_named(project: Path) -> None:
    error = load_error(project, VALID.replace('dockerfile = "Dockerfile"\nports', 'dockerfle = "Dockerfile"\nports'))
    assert "services[0].dockerfile" in str(error)
    assert "'dockerfle'" in str(error)
    assert "rename 'dockerfle' to 'dockerfile'" in error.hint


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.toml")
    assert "configuration file not found" in str(info.value)
    assert "--build-config" in info.value.hint


def test_find_cycle() -> None:
    assert find_cycle({"a": ("b",), "b": ("c",), "c": ("a",)}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ("b",), "b": (), "c": ("a", "b")}) == []
    assert find_cycle({"a": ("a",)}) == ["a", "a"]

"""Tests of uvresolve.py and uvphase.py that need no network: the pylock.toml reading, the wheel choice and the argv."""

from __future__ import annotations

from pathlib import Path

import pytest
from packaging.tags import Tag

from build_suite.config import WheelhouseConfig
from build_suite.errors import WheelhouseError
from build_suite.manifest import WheelRecord
from build_suite.resolve import Artifact, Plan
from build_suite.uvbuild import build_argv
from build_suite.uvphase import plan_differences
from build_suite.uvresolve import (
    INDEX_STRATEGY,
    best_wheel,
    compile_argv,
    parse_pylock,
    tag_priorities,
    unsupported_reason,
    uv_env,
)
from build_suite.wheelhousetasks import fetching_text

# The first tags of CPython 3.11 on manylinux x86_64, in the order pip prefers them.
PRIORITIES = tag_priorities(
    [
        Tag("cp311", "cp311", "manylinux_2_17_x86_64"),
        Tag("cp311", "abi3", "manylinux_2_17_x86_64"),
        Tag("cp310", "abi3", "manylinux_2_17_x86_64"),
        Tag("cp311", "none", "manylinux_2_17_x86_64"),
        Tag("py3", "none", "manylinux_2_17_x86_64"),
        Tag("cp311", "none", "any"),
        Tag("py3", "none", "any"),
    ]
)
FILES = "https://files.example.invalid/packages"


def wheel(filename: str) -> dict[str, object]:
    return {"url": f"{FILES}/{filename}", "hashes": {"sha256": "ab" * 32}}


def package(name: str, version: str, *wheels: str, sdist: str | None = None, **extra: object) -> dict[str, object]:
    entry: dict[str, object] = {"name": name, "version": version, **extra}
    if wheels:
        entry["wheels"] = [wheel(filename) for filename in wheels]
    if sdist:
        entry["sdist"] = {"url": f"{FILES}/{sdist}", "hashes": {"sha256": "cd" * 32}}
    return entry


def test_best_wheel_prefers_the_interpreters_own_abi() -> None:
    wheels = [
        wheel("pkg-1.0-py3-none-any.whl"),
        wheel("pkg-1.0-cp310-abi3-manylinux_2_17_x86_64.whl"),
        wheel("pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
    ]
    assert best_wheel(wheels, PRIORITIES)["url"].endswith("cp311-cp311-manylinux_2_17_x86_64.whl")


def test_best_wheel_prefers_abi3_over_pure() -> None:
    # An abi3 wheel built for an older CPython installs on 3.11: it is never "incompatible".
    wheels = [wheel("pkg-1.0-py3-none-any.whl"), wheel("pkg-1.0-cp310-abi3-manylinux_2_17_x86_64.whl")]
    assert best_wheel(wheels, PRIORITIES)["url"].endswith("cp310-abi3-manylinux_2_17_x86_64.whl")


def test_best_wheel_skips_other_platforms_and_bad_names() -> None:
    wheels = [
        wheel("pkg-1.0-cp311-cp311-win_amd64.whl"),
        wheel("pkg-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
        wheel("not a wheel name.whl"),
    ]
    assert best_wheel(wheels, PRIORITIES) is None


def test_best_wheel_build_number_tie() -> None:
    wheels = [wheel("pkg-1.0-1-py3-none-any.whl"), wheel("pkg-1.0-2-py3-none-any.whl"), wheel("pkg-1.0-py3-none-any.whl")]
    assert best_wheel(wheels, PRIORITIES)["url"].endswith("pkg-1.0-2-py3-none-any.whl")


def test_multi_tag_wheel_ranks_by_its_best_tag() -> None:
    wheels = [
        wheel("pkg-1.0-py3-none-any.whl"),
        wheel("pkg-1.0-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"),
    ]
    assert "manylinux_2_17" in best_wheel(wheels, PRIORITIES)["url"]


def test_parse_pylock_sorted_plan() -> None:
    data = {
        "packages": [
            package("Zope.Interface", "7.0", "zope.interface-7.0-cp311-cp311-manylinux_2_17_x86_64.whl", sdist="zope.interface-7.0.tar.gz"),
            package("docopt", "0.6.2", sdist="docopt-0.6.2.tar.gz"),
        ]
    }
    plan = parse_pylock(data, priorities=PRIORITIES)
    assert [(a.name, a.kind, a.filename) for a in plan.artifacts] == [
        ("docopt", "sdist", "docopt-0.6.2.tar.gz"),
        ("zope-interface", "wheel", "zope.interface-7.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
    ]
    assert plan.artifacts[1].sha256 == "ab" * 32
    assert plan.artifacts[0].sha256 == "cd" * 32


def test_parse_pylock_sdist_fallback() -> None:
    data = {"packages": [package("pkg", "1.0", "pkg-1.0-cp311-cp311-win_amd64.whl", sdist="pkg-1.0.tar.gz")]}
    assert parse_pylock(data, priorities=PRIORITIES).artifacts[0].filename == "pkg-1.0.tar.gz"


@pytest.mark.parametrize("no_binary", [("PKG",), (":all:",)])
def test_parse_pylock_honours_no_binary(no_binary: tuple[str, ...]) -> None:
    data = {"packages": [package("pkg", "1.0", "pkg-1.0-py3-none-any.whl", sdist="pkg-1.0.tar.gz")]}
    assert parse_pylock(data, priorities=PRIORITIES, no_binary=no_binary).artifacts[0].kind == "sdist"


def test_parse_pylock_false_marker() -> None:
    data = {
        "packages": [
            package("tomli", "2.0", "tomli-2.0-py3-none-any.whl", marker='python_version < "3.11"'),
            package("idna", "3.10", "idna-3.10-py3-none-any.whl", marker='python_version >= "3.8"'),
        ]
    }
    plan = parse_pylock(data, priorities=PRIORITIES, marker_env={"python_version": "3.11"})
    assert [a.name for a in plan.artifacts] == ["idna"]


def test_parse_pylock_no_usable_file() -> None:
    data = {"packages": [package("winonly", "2.1", "winonly-2.1-cp311-cp311-win_amd64.whl")]}
    with pytest.raises(WheelhouseError) as info:
        parse_pylock(data, priorities=PRIORITIES)
    assert "winonly 2.1" in info.value.message
    assert 'resolver = "pip"' in info.value.hint


def test_parse_pylock_relative_path(tmp_path: Path) -> None:
    data = {"packages": [{"name": "local", "version": "1.0", "wheels": [{"path": "../links/local-1.0-py3-none-any.whl"}]}]}
    artifact = parse_pylock(data, priorities=PRIORITIES, base=tmp_path / "lock").artifacts[0]
    assert artifact.url == (tmp_path / "links" / "local-1.0-py3-none-any.whl").as_uri()
    assert artifact.local_path == tmp_path / "links" / "local-1.0-py3-none-any.whl"


def test_parse_pylock_masks_credentials_in_urls() -> None:
    data = {"packages": [{"name": "pkg", "version": "1.0", "wheels": [{"url": "https://user:s3cret@index.invalid/pkg-1.0-py3-none-any.whl"}]}]}
    artifact = parse_pylock(data, priorities=PRIORITIES).artifacts[0]
    assert "s3cret" not in artifact.url
    assert artifact.filename == "pkg-1.0-py3-none-any.whl"


def test_compile_argv_passes_the_configs_index_options(tmp_path: Path) -> None:
    config = WheelhouseConfig(
        requirements=(tmp_path / "a.txt", tmp_path / "b.txt"),
        constraints=(tmp_path / "c.txt",),
        index_url="https://index.invalid/simple",
        extra_index_urls=("https://extra.invalid/simple",),
        find_links=("links",),
        no_binary=("docopt",),
        only_binary=(":all:",),
    )
    argv = compile_argv("/bin/uv", config, tmp_path / "pylock.toml", python="/usr/bin/python3")
    assert argv[:3] == ["/bin/uv", "pip", "compile"]
    assert "--no-config" in argv
    joined = " ".join(argv)
    assert " ".join(INDEX_STRATEGY) in joined
    assert "--format pylock.toml" in joined
    assert f"--output-file {tmp_path / 'pylock.toml'}" in joined
    assert "--python /usr/bin/python3" in joined
    assert "--index-url https://index.invalid/simple --extra-index-url https://extra.invalid/simple" in joined
    assert "--find-links links" in joined
    assert "--no-binary docopt --only-binary :all:" in joined
    assert f"--constraint {tmp_path / 'c.txt'}" in joined
    assert argv[-2:] == [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]


def test_uv_env_keeps_only_cache() -> None:
    env = uv_env({"UV_INDEX_URL": "https://other.invalid", "UV_CACHE_DIR": "/cache", "PATH": "/bin"})
    assert "UV_INDEX_URL" not in env
    assert env["UV_CACHE_DIR"] == "/cache"
    assert env["PATH"] == "/bin"


def test_unsupported_reason_names_each_case(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("idna==3.10\n")
    hashed = tmp_path / "hashed.txt"
    hashed.write_text("idna==3.10 --hash=sha256:" + "ab" * 32 + "\n")
    config = WheelhouseConfig(requirements=(plain,))
    assert unsupported_reason(config, cross_target=False, uv_path="/bin/uv") is None
    assert "not installed" in unsupported_reason(config, cross_target=False, uv_path=None)
    assert "target Python" in unsupported_reason(config, cross_target=True, uv_path="/bin/uv")
    not_isolated = WheelhouseConfig(requirements=(plain,), isolate_pip_config=False)
    assert "isolate_pip_config" in unsupported_reason(not_isolated, cross_target=False, uv_path="/bin/uv")
    with_hashes = WheelhouseConfig(requirements=(hashed,))
    assert "--hash" in unsupported_reason(with_hashes, cross_target=False, uv_path="/bin/uv")


def record(filename: str) -> WheelRecord:
    name, version = filename.split("-")[:2]
    return WheelRecord(name=name, version=version, filename=filename, sha256="ab" * 32, size=1, source="downloaded", seconds=0.0)


def artifact(filename: str) -> Artifact:
    name, version = filename.split("-")[:2]
    return Artifact(name=name, version=version, filename=filename, url="file:///w/" + filename, sha256=None, kind="wheel")


def test_plan_differences_lists_what_pip_would_change() -> None:
    records = {"idna": record("idna-3.10-py3-none-any.whl"), "six": record("six-1.17.0-py2.py3-none-any.whl"),
               "anyio": record("anyio-4.6.0-py3-none-any.whl")}
    plan = Plan(artifacts=(artifact("anyio-4.6.0-py3-none-any.whl"), artifact("idna-3.11-py3-none-any.whl"),
                           artifact("sniffio-1.3.0-py3-none-any.whl")))
    assert plan_differences(plan, records) == [
        "pip chooses idna-3.11-py3-none-any.whl instead of idna-3.10-py3-none-any.whl",
        "pip does not need six-1.17.0-py2.py3-none-any.whl",
        "pip also needs sniffio-1.3.0-py3-none-any.whl",
    ]
    assert plan_differences(Plan(artifacts=(artifact("anyio-4.6.0-py3-none-any.whl"),)), {"anyio": records["anyio"]}) == []


def test_plan_differences_caps_the_list() -> None:
    plan = Plan(artifacts=tuple(artifact(f"p{i}-1.0-py3-none-any.whl") for i in range(8)))
    lines = plan_differences(plan, {}, limit=3)
    assert len(lines) == 4
    assert lines[-1] == "and 5 more"


def test_build_argv_index_options(tmp_path: Path) -> None:
    config = WheelhouseConfig(requirements=(), index_url="https://index.invalid/simple", find_links=("links",))
    arguments = build_argv(tmp_path / "pkg-1.0.tar.gz", tmp_path / "out", config, python="/usr/bin/python3")
    joined = " ".join(arguments)
    assert arguments[:3] == ["build", "--no-config", "--wheel"]
    assert "--python /usr/bin/python3" in joined
    assert f"--out-dir {tmp_path / 'out'}" in joined
    assert " ".join(INDEX_STRATEGY) in joined
    assert "--index-url https://index.invalid/simple --find-links links" in joined
    assert arguments[-1] == str(tmp_path / "pkg-1.0.tar.gz")


def test_fetching_text_counts_each_kind() -> None:
    assert fetching_text(3, 1, 4, 2) == (
        "downloading 3 wheels, up to 4 at a time; building 1 wheel from source, up to 2 at a time"
    )
    assert fetching_text(1, 0, 4, 2) == "downloading 1 wheel, up to 4 at a time"
    assert fetching_text(0, 2, 4, 2) == "building 2 wheels from source, up to 2 at a time"

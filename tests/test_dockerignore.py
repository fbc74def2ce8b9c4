"""Build-context selection, checked against expected lists and against what the engine copies."""

from __future__ import annotations

import io
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from build_suite.dockerignore import (
    ContextError,
    build_context_tar,
    context_files,
    find_ignore_file,
    is_excluded,
    parse_ignore_text,
)

BASE_IMAGE = "localhost/build-suite/python:3.11-bookworm"
TEST_LABEL = "build-suite.test"
LISTING_DOCKERFILE = f"FROM {BASE_IMAGE}\nCOPY . /ctx\nRUN cd /ctx && find . ! -type d | sort\n"

FILES = [
    "a.txt", "b.log", "keep.log", "dir/x.txt", "dir/keep.txt", "dir/sub/y.log", "deep/a/b/c.log",
    "deep/c.log", "node_modules/m.js", "src/node_modules/n.js", "src/app.py", ".git/HEAD", "Dockerfile",
]
LINKS = {"link.txt": "a.txt"}
DIR_FILES = {"dir/x.txt", "dir/keep.txt", "dir/sub/y.log"}
ALL_ENTRIES = set(FILES) | set(LINKS) | {".dockerignore"}
ALL_LOGS = {"b.log", "keep.log", "dir/sub/y.log", "deep/a/b/c.log", "deep/c.log"}

# Each case: ignore files to write, and the paths expected to be left out of the context.
CASES = {
    "no_ignore_file": ({}, set()),
    "folder": ({".dockerignore": "dir\n"}, DIR_FILES),
    "folder_trailing_slash": ({".dockerignore": "dir/\n"}, DIR_FILES),
    "folder_leading_slash": ({".dockerignore": "/dir\n"}, DIR_FILES),
    "reinclude_in_folder": ({".dockerignore": "dir\n!dir/keep.txt\n"}, DIR_FILES - {"dir/keep.txt"}),
    "reinclude_leading_slash": ({".dockerignore": "dir\n!/dir/keep.txt\n"}, DIR_FILES - {"dir/keep.txt"}),
    "star_matches_root_only": ({".dockerignore": "*.log\n"}, {"b.log", "keep.log"}),
    "double_star_any_depth": ({".dockerignore": "**/*.log\n"}, ALL_LOGS),
    "last_match_wins": ({".dockerignore": "*.log\n!keep.log\n*.log\n"}, {"b.log", "keep.log"}),
    "reinclude_file": ({".dockerignore": "*.log\n!keep.log\n"}, {"b.log"}),
    "comments_and_whitespace": ({".dockerignore": "# a.txt\n  b.log  \n\n"}, {"b.log"}),
    "double_star_folder": ({".dockerignore": "**/node_modules\n"}, {"node_modules/m.js", "src/node_modules/n.js"}),
    "subtree_reinclude": ({".dockerignore": "deep/**\n!deep/a/**\n"}, {"deep/c.log"}),
    "ignore_dockerfile": ({".dockerignore": "Dockerfile\n.dockerignore\n"}, {"Dockerfile", ".dockerignore"}),
    "cleaned_paths": ({".dockerignore": "dir/../a.txt\n./b.log\n"}, {"a.txt", "b.log"}),
    "question_mark": ({".dockerignore": "?.txt\n"}, {"a.txt"}),
    "character_class": ({".dockerignore": "[ab].*\n"}, {"a.txt", "b.log"}),
    "git_folder": ({".dockerignore": ".git\n"}, {".git/HEAD"}),
    "symlink": ({".dockerignore": "link.txt\n"}, {"link.txt"}),
    "space_after_bang_not_reinclude": ({".dockerignore": "*.txt\n! a.txt\n"}, {"a.txt", "link.txt"}),
    "everything_but_folder": ({".dockerignore": "*\n!src\n"},
                              ALL_ENTRIES - {"src/app.py", "src/node_modules/n.js"}),
    "everything_but_file": ({".dockerignore": "**\n!src/app.py\n"}, ALL_ENTRIES - {"src/app.py"}),
    "containerignore_first": ({".containerignore": "b.log\n", ".dockerignore": "a.txt\n"}, {"b.log"}),
    "dockerfile_ignore_first": ({"Dockerfile.dockerignore": "a.txt\n", ".containerignore": "b.log\n"}, {"a.txt"}),
}


def make_context(root: Path, ignore_files: dict[str, str]) -> Path:
    context = root / "context"
    for name in FILES:
        path = context / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(LISTING_DOCKERFILE if name == "Dockerfile" else name + "\n")
    for name, target in LINKS.items():
        (context / name).symlink_to(target)
    (context / "empty").mkdir()
    for name, text in ignore_files.items():
        (context / name).write_text(text)
    return context


def expected_files(ignore_files: dict[str, str], excluded: set[str]) -> list[str]:
    return sorted((set(FILES) | set(LINKS) | set(ignore_files)) - excluded)


@pytest.mark.parametrize("case", sorted(CASES))
def test_context_files_table(tmp_path, case):
    ignore_files, excluded = CASES[case]
    context = make_context(tmp_path, ignore_files)

    files = context_files(context, context / "Dockerfile")

    assert files == expected_files(ignore_files, excluded)




def unfiltered_tar(context: Path) -> io.BytesIO:
    """Return a tar of every file in the context, so that only the engine applies the ignore file."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.add(context, arcname=".")
    buffer.seek(0)
    return buffer


def engine_copied_files(client, archive) -> list[str]:
    """Build the listing Dockerfile from the archive and return the files COPY placed in the image."""
    output: list[str] = []
    image_id = None
    try:
        for message in client.api.build(fileobj=archive, custom_context=True, nocache=True, rm=True, forcerm=True,
                                        labels={TEST_LABEL: "test_dockerignore"}, decode=True):
            assert "error" not in message, message
            output.append(message.get("stream", ""))
            image_id = (message.get("aux") or {}).get("ID", image_id)
    finally:
        if image_id:
            client.images.remove(image_id)
    return sorted(line[2:] for line in "".join(output).splitlines() if line.startswith("./"))


def engine_listings_for_case(client, root: Path, case: str) -> tuple[list[str], list[str], list[str]]:
    context = make_context(root, CASES[case][0])
    files = context_files(context, context / "Dockerfile")
    copied_from_all_files = engine_copied_files(client, unfiltered_tar(context))
    with build_context_tar(context, context / "Dockerfile") as archive:
        copied_from_selection = engine_copied_files(client, archive)
    return files, copied_from_all_files, copied_from_selection


@pytest.fixture(scope="module")
def engine_listings(client, tmp_path_factory):
    """Build every case twice, four builds at a time, and return what the engine copied."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case: pool.submit(engine_listings_for_case, client, tmp_path_factory.mktemp(case), case)
                   for case in CASES}
        return {case: future.result() for case, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_engine_agrees_with_context_files(engine_listings, case):
    files, copied_from_all_files, copied_from_selection = engine_listings[case]

    # The engine applies the ignore file itself to an unfiltered context.
    assert copied_from_all_files == files
    # The harness's own archive reaches the image unchanged.
    assert copied_from_selection == files


def test_context_tar_sends_excluded_dockerfile(tmp_path):
    context = make_context(tmp_path, {".dockerignore": "Dockerfile\n.dockerignore\ndir\n"})

    with build_context_tar(context, context / "Dockerfile") as archive:
        members = tarfile.open(fileobj=archive).getmembers()
    names = {member.name for member in members}

    assert "Dockerfile" in names
    assert ".dockerignore" in names
    assert "dir/x.txt" not in names
    assert "empty" in names
    assert {member.uid for member in members} == {0}
    assert [member.linkname for member in members if member.name == "link.txt"] == ["a.txt"]


def test_dockerfile_outside_context_rejected(tmp_path):
    context = make_context(tmp_path, {})
    outside = tmp_path / "Dockerfile"
    outside.write_text("FROM scratch\n")

    with pytest.raises(ContextError, match="outside the build context"):
        build_context_tar(context, outside)


def test_find_ignore_file_order(tmp_path):
    context = make_context(tmp_path, {".dockerignore": "", ".containerignore": ""})
    dockerfile = context / "Dockerfile"

    assert find_ignore_file(context, dockerfile) == context / ".containerignore"
    (context / "Dockerfile.dockerignore").write_text("")
    assert find_ignore_file(context, dockerfile) == context / "Dockerfile.dockerignore"


@pytest.mark.parametrize(("pattern", "path", "expected"), [
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/c", False),
    ("**", "any/depth/file", True),
    ("*/x.txt", "dir/x.txt", True),
    ("*/x.txt", "dir/sub/x.txt", False),
    ("x\\*y", "x*y", True),
    ("x\\*y", "xzy", False),
    ("file.txt", "file_txt", False),
    ("dir", "dir/sub/file", True),
    ("dir/sub", "dir/subway/file", False),
])
def test_pattern_matching(pattern, path, expected):
    assert is_excluded(path, parse_ignore_text(pattern)) is expected


def test_lone_bang_rejected():
    with pytest.raises(ValueError, match='invalid ignore pattern "!"'):
        parse_ignore_text("!\n")

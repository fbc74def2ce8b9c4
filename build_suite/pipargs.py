"""Build the argv and environment of every pip run of the wheelhouse phase.

With `isolate_pip_config` (the default) pip reads no configuration file and no
PIP_* variable of the calling environment, because a machine's pip
configuration can add find-links folders, extra indexes and a constraints file
that would change what goes into the wheelhouse. Only the index options of
WheelhouseConfig then decide where packages come from.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

from build_suite.redact import redact

# TLS trust settings pass through isolation: they decide which servers are
# trusted, never where packages come from.
KEPT_PIP_VARIABLES = frozenset({"PIP_CERT", "PIP_CLIENT_CERT"})

# Options that every pip run gets: never prompt (stdin is the null device, so a
# prompt would only hang until the stall timeout), no self-update check, and
# no progress bars, whose redraws carry no information for the line parser.
COMMON_OPTIONS = ("--no-input", "--disable-pip-version-check", "--progress-bar", "off")


def default_pip_command() -> tuple[str, ...]:
    """Return the command that runs the pip of the running interpreter."""
    return (sys.executable, "-m", "pip")


def pip_env(
    *,
    isolate: bool = True,
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the environment for a pip run.

    With `isolate`, PIP_CONFIG_FILE is the null device and every PIP_*
    variable of `base` (default: os.environ) is dropped except the TLS
    settings in KEPT_PIP_VARIABLES. Variables in `extra` are set last and
    always kept, so a caller can choose PIP_CACHE_DIR on purpose.
    """
    source = os.environ if base is None else base
    env = dict(source)
    if isolate:
        env = {
            name: value
            for name, value in env.items()
            if not name.startswith("PIP_") or name in KEPT_PIP_VARIABLES
        }
        env["PIP_CONFIG_FILE"] = os.devnull
    # A child Python that buffers its output would hold back lines that the
    # live status needs.
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def index_options(config: object) -> list[str]:
    """Return pip's index options from a WheelhouseConfig (or any object with the same fields)."""
    options: list[str] = []
    index_url = getattr(config, "index_url", None)
    if index_url:
        options += ["--index-url", index_url]
    for url in getattr(config, "extra_index_urls", ()):
        options += ["--extra-index-url", url]
    for link in getattr(config, "find_links", ()):
        options += ["--find-links", str(link)]
    return options


def binary_options(config: object) -> list[str]:
    """Return --no-binary and --only-binary options from the config, one option per package list."""
    options: list[str] = []
    no_binary = tuple(getattr(config, "no_binary", ()))
    only_binary = tuple(getattr(config, "only_binary", ()))
    if no_binary:
        options += ["--no-binary", ",".join(no_binary)]
    if only_binary:
        options += ["--only-binary", ",".join(only_binary)]
    return options


def requirement_options(requirements: Sequence[os.PathLike[str] | str], constraints: Sequence[os.PathLike[str] | str]) -> list[str]:
    """Return -r and -c options for the given files, in order."""
    options: list[str] = []
    for path in requirements:
        options += ["-r", str(path)]
    for path in constraints:
        options += ["-c", str(path)]
    return options


def pip_argv(pip_command: Sequence[str], subcommand: str, *options: str) -> list[str]:
    """Return the full argv of one pip run: command, subcommand, common options, then `options`."""
    return [*pip_command, subcommand, *COMMON_OPTIONS, *options]


def describe_options(config: object) -> dict[str, object]:
    """Return the pip options that change the result, with credentials masked, for fingerprints and logs."""
    return {
        "index_url": redact(getattr(config, "index_url", None) or ""),
        "extra_index_urls": [redact(url) for url in getattr(config, "extra_index_urls", ())],
        "find_links": [redact(str(link)) for link in getattr(config, "find_links", ())],
        "no_binary": list(getattr(config, "no_binary", ())),
        "only_binary": list(getattr(config, "only_binary", ())),
        "require_hashes": bool(getattr(config, "require_hashes", False)),
        "isolate_pip_config": bool(getattr(config, "isolate_pip_config", True)),
        # A switch of resolver resolves again, so the wheelhouse contains what the chosen resolver picks.
        "resolver": str(getattr(config, "resolver", "pip")),
    }

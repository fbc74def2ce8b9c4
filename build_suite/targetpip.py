"""Run pip with environment markers evaluated for the target interpreter instead of the running one.

pip's `--python-version`, `--platform` and `--abi` options choose wheels for
another interpreter, but pip (23.2 and later, at least up to 25.1) still
evaluates PEP 508 markers such as `python_version < "3.12"` for the
interpreter that runs it. A host Python 3.11 resolving for a 3.13 image would
then add or drop dependencies by the host's version.

This script is started by file path (`python targetpip.py install ...`), so it
imports nothing from build_suite. It reads the target's marker values as a JSON
object from the environment variable MARKER_VARIABLE and overlays them on the
values that pip's vendored `packaging` computes, then runs pip's command line.

NOTE: it replaces `pip._vendor.packaging.markers.default_environment`, which is
pip's private vendored copy of packaging. A pip without that function exits
with status 2 and a message instead of resolving with the host's markers, and
the wheelhouse phase checks the result again with the target's own pip.
"""

from __future__ import annotations

import json
import os
import sys

MARKER_VARIABLE = "BUILD_SUITE_TARGET_MARKERS"


def load_marker_values() -> dict[str, str]:
    """Return the marker values from MARKER_VARIABLE; exit with status 2 when it is missing or invalid."""
    text = os.environ.get(MARKER_VARIABLE)
    if not text:
        sys.exit(f"targetpip: {MARKER_VARIABLE} is not set; it must be a JSON object of PEP 508 marker values")
    try:
        values = json.loads(text)
    except ValueError as error:
        sys.exit(f"targetpip: {MARKER_VARIABLE} is not valid JSON: {error}")
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        sys.exit(f"targetpip: {MARKER_VARIABLE} must be a JSON object of strings")
    return values


def install_marker_values(values: dict[str, str]) -> None:
    """Make pip's marker evaluation use `values` on top of the running interpreter's environment."""
    try:
        from pip._vendor.packaging import markers
    except ImportError as error:
        sys.exit(f"targetpip: cannot import pip's vendored packaging.markers: {error}")
    host_environment = getattr(markers, "default_environment", None)
    if not callable(host_environment):
        sys.exit("targetpip: this pip has no packaging.markers.default_environment to evaluate markers for the target")

    def target_environment() -> dict[str, str]:
        environment = dict(host_environment())
        environment.update(values)
        return environment

    markers.default_environment = target_environment


def main() -> int:
    # Started by file path, Python puts this script's folder first on sys.path,
    # where build_suite's own modules could shadow modules that pip imports.
    script_folder = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != script_folder]
    install_marker_values(load_marker_values())
    from pip._internal.cli.main import main as pip_main

    return pip_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

"""Typed access to one TOML table, with errors that name the file and the key.

A TableReader records which keys were read, so `finish()` can reject every key
that no reader asked for: a misspelt key is an error, never silently ignored.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from build_suite.errors import ConfigError

_MISSING = object()


class TableReader:
    def __init__(self, data: dict[str, Any], file: Path, base: Path, prefix: str) -> None:
        self.data = data
        self.file = file
        self.base = base
        self.prefix = prefix
        self.read: set[str] = set()

    @staticmethod
    def describe(value: Any) -> str:
        names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
                 list: "an array", dict: "a table"}
        return f"{names.get(type(value), type(value).__name__)} ({value!r})"

    @staticmethod
    def file_of(tables: list["TableReader"]) -> str:
        return str(tables[0].file) if tables else "configuration"

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(self.file, self.key(name), message, hint)

    def _get(self, name: str, required: bool) -> Any:
        self.read.add(name)
        if name in self.data:
            return self.data[name]
        if required:
            close = difflib.get_close_matches(name, [key for key in self.data if isinstance(key, str)], n=1)
            if close:
                raise self.fail(name, f"missing required key; the table has {close[0]!r}, which looks misspelt",
                                f"rename {close[0]!r} to {name!r}")
            raise self.fail(name, "missing required key", f"add {self.key(name)} to the file")
        return _MISSING

    def _expect(self, name: str, value: Any, expected: str) -> ConfigError:
        return self.fail(name, f"expected {expected}, got {self.describe(value)}")

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.read)
        if unknown:
            known = ", ".join(sorted(self.read)) or "none"
            raise self.fail(unknown[0], "unknown key", f"remove it or use one of the known keys: {known}")

    def table(self, name: str, required: bool = False) -> "TableReader":
        value = self._get(name, required)
        if value is _MISSING:
            value = {}
        if not isinstance(value, dict):
            raise self._expect(name, value, f"a table [{self.key(name)}]")
        return TableReader(value, self.file, self.base, self.key(name))

    def tables(self, name: str, required: bool = False) -> list["TableReader"]:
        value = self._get(name, required)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self._expect(name, value, f"an array of tables [[{self.key(name)}]]")
        return [TableReader(item, self.file, self.base, f"{self.key(name)}[{index}]")
                for index, item in enumerate(value)]

    def string(self, name: str, default: Any = None, *, required: bool = False,
               pattern: re.Pattern[str] | None = None, expected: str = "a string") -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or (pattern is not None and not pattern.match(value)):
            raise self._expect(name, value, expected)
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = None, *, required: bool = False) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if value not in choices:
            raise self._expect(name, value, "one of " + ", ".join(repr(choice) for choice in choices))
        return value

    def boolean(self, name: str, default: bool) -> bool:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self._expect(name, value, "true or false")
        return value

    def integer(self, name: str, default: Any, *, minimum: int | None = None, maximum: int | None = None) -> Any:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._expect(name, value, "an integer")
        self._check_range(name, value, minimum, maximum)
        return value

    def number(self, name: str, default: Any, *, minimum: float | None = None,
               maximum: float | None = None) -> Any:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self._expect(name, value, "a number")
        self._check_range(name, value, minimum, maximum)
        return float(value)

    def _check_range(self, name: str, value: float, minimum: float | None, maximum: float | None) -> None:
        if minimum is not None and value < minimum:
            raise self._expect(name, value, f"a value of at least {minimum}")
        if maximum is not None and value > maximum:
            raise self._expect(name, value, f"a value of at most {maximum}")

    def strings(self, name: str, default: Any = ()) -> Any:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self._expect(name, value, "an array of strings")
        return tuple(value)

    def string_lists(self, name: str) -> tuple[tuple[str, ...], ...]:
        value = self._get(name, False)
        if value is _MISSING:
            return ()
        valid = isinstance(value, list) and all(
            isinstance(item, list) and item and all(isinstance(part, str) for part in item) for item in value)
        if not valid:
            raise self._expect(name, value, 'an array of commands, each an array of strings such as ["make", "bench"]')
        return tuple(tuple(item) for item in value)

    def string_map(self, name: str) -> dict[str, str]:
        value = self._get(name, False)
        if value is _MISSING:
            return {}
        if not isinstance(value, dict):
            raise self._expect(name, value, "a table of strings")
        for key, item in value.items():
            if not isinstance(item, str):
                raise self.fail(f"{name}.{key}", f"expected a string, got {self.describe(item)}")
        return dict(value)

    def port_map(self, name: str) -> dict[int, int]:
        value = self._get(name, False)
        if value is _MISSING:
            return {}
        if not isinstance(value, dict):
            raise self._expect(name, value, "a table of container port = host port")
        ports: dict[int, int] = {}
        for key, item in value.items():
            if not key.isdigit() or not 1 <= int(key) <= 65535:
                raise self.fail(f"{name}.{key}", "expected a container port number from 1 to 65535 as the key")
            if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 65535:
                raise self.fail(f"{name}.{key}",
                                f"expected a host port from 0 to 65535 (0 picks a free port), got {self.describe(item)}")
            ports[int(key)] = item
        return ports

    def path(self, name: str, *, kind: str = "any", required: bool = False, must_exist: bool = True) -> Path | None:
        value = self._get(name, required)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or not value:
            raise self._expect(name, value, "a path as a string")
        return self._resolve(name, value, kind, must_exist)

    def paths(self, name: str, *, kind: str = "any", required: bool = False) -> tuple[Path, ...]:
        value = self._get(name, required)
        if value is _MISSING:
            return ()
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise self._expect(name, value, "an array of paths")
        return tuple(self._resolve(f"{name}[{index}]", item, kind, True) for index, item in enumerate(value))

    def _resolve(self, name: str, value: str, kind: str, must_exist: bool) -> Path:
        path = (self.base / value).resolve()
        if not must_exist:
            return path
        if kind == "file" and not path.is_file():
            raise self.fail(name, f"file not found: {path}", "fix the path; relative paths start at the configuration's folder")
        if kind == "dir" and not path.is_dir():
            raise self.fail(name, f"folder not found: {path}", "fix the path; relative paths start at the configuration's folder")
        if kind == "any" and not path.exists():
            raise self.fail(name, f"path not found: {path}", "fix the path; relative paths start at the configuration's folder")
        return path

"""Check a built image: it must run as a non-root user and carry no secrets in
its environment, labels or build history.

The checks read the image's inspect data (`image.attrs` of the docker SDK) and
its history (`image.history()`). A value is reported as a secret when
detect-secrets flags the `NAME=value` line, or when the name looks like a
credential (PASSWORD, SECRET, TOKEN, KEY) and the value is not empty. Findings
name the image and the variable, never the value.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from detect_secrets.core.scan import scan_line
from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString

from build_suite.security.secrets import detect_secrets_settings

# scan_line() runs the entropy plugins in eager mode, which reports every
# token whatever its entropy, so they run separately with their default limits.
_ENTROPY_PLUGINS = (Base64HighEntropyString(), HexHighEntropyString())
_ENTROPY_PLUGIN_NAMES = ("Base64HighEntropyString", "HexHighEntropyString")

# Names that match the credential pattern but hold public data. GPG_KEY is
# the release signing key fingerprint that the official python images set.
DEFAULT_ALLOWED_NAMES = frozenset({"GPG_KEY"})

# A name part that ends in one of these words marks a credential: API_KEY,
# DB_PASSWORD, GITHUB_TOKEN, AUTHTOKEN, SECRETS.
_CREDENTIAL_PART = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|KEY)S?$")
# A last name part that marks the value as pointing at a credential instead of
# holding it: PASSWORD_FILE, SECRET_NAME, TOKEN_URL.
_REFERENCE_PARTS = frozenset({"FILE", "PATH", "DIR", "NAME", "URL", "URI", "ID", "LENGTH"})
# A name part that marks a hex value as a checksum or commit, which the hex
# entropy plugin would otherwise report: PYTHON_SHA256, GIT_COMMIT and the
# org.opencontainers.image.revision label.
_DIGEST_PARTS = frozenset({"SHA", "SHA1", "SHA256", "SHA512", "MD5", "COMMIT", "REVISION", "DIGEST", "CHECKSUM", "HASH"})
_HEX_VALUE = re.compile(r"[0-9a-fA-F]+")
_CAMEL_BOUNDARY = re.compile(r"([a-z0-9])([A-Z])")
_ROOT_USERS = {"", "root", "0"}

# History lines. Podman 4.3 records the build arguments of a RUN step as
# "|2 A=1 B=2 /bin/sh -c ..." and an ENV step as "/bin/sh -c #(nop) ENV A=1".
# NOTE: the forms without "/bin/sh -c #(nop)", as BuildKit writes them, are
# accepted too but were tested only with made-up history.
_BUILD_ARGS_PREFIX = re.compile(r"^(?:RUN\s+)?\|(\d+)\s+(.*)$", re.DOTALL)
_INSTRUCTION = re.compile(r"^(?:/bin/sh -c\s+)?(?:#\(nop\)\s*)?(ARG|ENV)\s+(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Finding:
    """A problem in an image.

    `kind` is "root-user", "env", "label" or "build-arg". `name` is the
    variable or label name, or "User" for a root-user finding.
    """

    image: str
    kind: str
    name: str
    reason: str


def format_finding(finding: Finding) -> str:
    """Build the one-line message for a finding. It never contains a secret value."""
    if finding.kind == "root-user":
        return f"{finding.image}: runs as root ({finding.reason})"
    where = {"env": "ENV", "label": "LABEL", "build-arg": "build argument"}[finding.kind]
    return f"{finding.image}: {where} {finding.name} looks like a secret ({finding.reason})"


def is_root_user(user: str | None) -> bool:
    """Return whether a Config.User value makes the container run as root.

    An empty value means the engine's default, which is root.
    """
    name = (user or "").strip().split(":", 1)[0]
    # NOTE: a user name other than "root" that the image's /etc/passwd maps to
    # UID 0 is not detected, because only the inspect data is read.
    return name in _ROOT_USERS


def check_user(attrs: Mapping[str, Any], image: str) -> list[Finding]:
    """Return a root-user finding when the image's Config.User is unset or root."""
    user = (attrs.get("Config") or {}).get("User") or ""
    if not is_root_user(user):
        return []
    reason = "Config.User is not set" if not user.strip() else f"Config.User is {user.strip()!r}"
    return [Finding(image, "root-user", "User", reason)]


def _name_parts(name: str) -> list[str]:
    """Split a variable or label name into upper-case words at separators and camelCase boundaries."""
    spaced = _CAMEL_BOUNDARY.sub(r"\1_\2", name)
    return [part for part in re.split(r"[^A-Za-z0-9]+", spaced.upper()) if part]


def looks_like_credential_name(name: str) -> bool:
    """Return whether a variable or label name reads like a password, secret, token or key."""
    parts = _name_parts(name)
    if not parts or parts[-1] in _REFERENCE_PARTS:
        return False
    return any(_CREDENTIAL_PART.search(part) for part in parts)


def secret_reason(name: str, value: str, allowed_names: Iterable[str] = DEFAULT_ALLOWED_NAMES) -> str | None:
    """Return why `name=value` looks like a secret, or None when it does not."""
    with detect_secrets_settings(exclude_plugins=_ENTROPY_PLUGIN_NAMES):
        return _secret_reason(name, value, frozenset(allowed_names))


def _secret_reason(name: str, value: str, allowed_names: frozenset[str]) -> str | None:
    # Callers enter detect_secrets_settings() once for a batch of values.
    if not value or name in allowed_names:
        return None
    kinds = {secret.type for secret in scan_line(f"{name}={value}")}
    if not _is_named_digest(name, value):
        kinds.update(_entropy_kinds(name, value))
    if kinds:
        return ", ".join(sorted(kinds))
    if looks_like_credential_name(name):
        return "name suggests a credential"
    return None


def _is_named_digest(name: str, value: str) -> bool:
    return _HEX_VALUE.fullmatch(value) is not None and any(part in _DIGEST_PARTS for part in _name_parts(name))


def _entropy_kinds(name: str, value: str) -> set[str]:
    # The quotes let the entropy plugins read the whole value as one string.
    quoted_line = f'{name}="{value}"'
    kinds = set()
    for plugin in _ENTROPY_PLUGINS:
        found = plugin.analyze_line(filename="image", line=quoted_line, line_number=1, enable_eager_search=False)
        kinds.update(secret.type for secret in found)
    return kinds


def env_assignments(attrs: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (name, value) for each entry of the image's Config.Env."""
    for entry in (attrs.get("Config") or {}).get("Env") or ():
        name, _, value = str(entry).partition("=")
        yield name, value


def label_assignments(attrs: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Yield (name, value) for each of the image's labels."""
    for name, value in ((attrs.get("Config") or {}).get("Labels") or {}).items():
        yield str(name), "" if value is None else str(value)


def history_assignments(history: Iterable[Mapping[str, Any]]) -> Iterator[tuple[str, str, str]]:
    """Yield (kind, name, value) for build arguments and ENV values recorded in image history.

    `kind` is "build-arg" or "env". An ARG without a default has no value and
    is skipped.
    """
    for step in history:
        created_by = str(step.get("CreatedBy") or step.get("created_by") or "").strip()
        prefix = _BUILD_ARGS_PREFIX.match(created_by)
        if prefix:
            yield from _run_build_args(int(prefix.group(1)), prefix.group(2))
            continue
        instruction = _INSTRUCTION.match(created_by)
        if instruction:
            kind = "build-arg" if instruction.group(1) == "ARG" else "env"
            for name, value in _instruction_assignments(instruction.group(2)):
                yield kind, name, value


def _run_build_args(count: int, text: str) -> Iterator[tuple[str, str, str]]:
    # NOTE: the engine writes the values unquoted, so a value with a space is
    # cut at the space; the name is still checked.
    for token in text.split()[:count]:
        name, separator, value = token.partition("=")
        if separator:
            yield "build-arg", name, value


def _instruction_assignments(text: str) -> Iterator[tuple[str, str]]:
    try:
        tokens = shlex.split(text)
    except ValueError:
        tokens = text.split()
    if len(tokens) >= 2 and "=" not in tokens[0]:
        # The old "ENV NAME value" form sets one variable to the rest of the line.
        yield tokens[0], " ".join(tokens[1:])
        return
    for token in tokens:
        name, separator, value = token.partition("=")
        if separator:
            yield name, value


def check_secrets(
    attrs: Mapping[str, Any],
    history: Iterable[Mapping[str, Any]],
    image: str,
    allowed_names: Iterable[str] = DEFAULT_ALLOWED_NAMES,
) -> list[Finding]:
    """Return a finding for each ENV, label or build argument that looks like a secret."""
    allowed = frozenset(allowed_names)
    candidates: list[tuple[str, str, str]] = [("env", name, value) for name, value in env_assignments(attrs)]
    candidates += [("label", name, value) for name, value in label_assignments(attrs)]
    candidates += list(history_assignments(history))

    findings: dict[tuple[str, str], Finding] = {}
    with detect_secrets_settings(exclude_plugins=_ENTROPY_PLUGIN_NAMES):
        for kind, name, value in candidates:
            if (kind, name) in findings:
                continue
            reason = _secret_reason(name, value, allowed)
            if reason:
                findings[(kind, name)] = Finding(image, kind, name, reason)
    return list(findings.values())


def check_image(
    attrs: Mapping[str, Any],
    history: Iterable[Mapping[str, Any]] = (),
    image: str | None = None,
    allowed_names: Iterable[str] = DEFAULT_ALLOWED_NAMES,
) -> list[Finding]:
    """Run the user and secret checks on one image's inspect data and history.

    `image` names the image in findings. It defaults to the first repo tag, then
    the image ID.
    """
    name = image or _image_name(attrs)
    return check_user(attrs, name) + check_secrets(attrs, history, name, allowed_names)


def _image_name(attrs: Mapping[str, Any]) -> str:
    tags = attrs.get("RepoTags") or ()
    return str(tags[0]) if tags else str(attrs.get("Id", "<unknown image>"))


def check_engine_image(client: Any, reference: str, allowed_names: Iterable[str] = DEFAULT_ALLOWED_NAMES) -> list[Finding]:
    """Fetch an image's inspect data and history through a docker SDK client and check them."""
    image = client.images.get(reference)
    return check_image(image.attrs, image.history(), reference, allowed_names)

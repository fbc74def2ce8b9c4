"""Operations that a job can request, each mapping the job's text to an output dict."""

from __future__ import annotations

import logging
from typing import Any, Callable

logger = logging.getLogger("worker.tasks")


def word_count(text: str) -> dict[str, Any]:
    return {"words": len(text.split()), "lines": len(text.splitlines()), "characters": len(text)}


def reverse(text: str) -> dict[str, Any]:
    return {"text": text[::-1]}


def uppercase(text: str) -> dict[str, Any]:
    return {"text": text.upper()}


OPERATIONS: dict[str, Callable[[str], dict[str, Any]]] = {
    "word_count": word_count,
    "reverse": reverse,
    "uppercase": uppercase,
}


def execute(job: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """Run one job and return (output, None) on success or (None, error message) on failure."""
    operation = OPERATIONS.get(job.get("operation", ""))
    if operation is None:
        return None, f"unknown operation {job.get('operation')!r}: expected one of {', '.join(sorted(OPERATIONS))}"
    text = job.get("text")
    if not isinstance(text, str):
        return None, f"invalid text of type {type(text).__name__}: expected a string"
    try:
        return operation(text), None
    except Exception as error:  # noqa: BLE001 - a failing job must not stop the worker.
        logger.exception("job %s failed in operation %s", job.get("id"), job.get("operation"))
        return None, f"{type(error).__name__}: {error}"

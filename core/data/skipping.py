"""The ``on_error`` policy every dataset shares: "raise" names a bad file in the error; "skip"
serves the next readable sample in its place, records each bad source once with the reason, and
logs it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence, TypeVar

Item = TypeVar("Item")

__all__ = ["ON_ERROR", "check_on_error", "first_readable", "without_missing"]

ON_ERROR = ("raise", "skip")


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    return on_error


def first_readable(index: int, count: int, read: Callable[[int], Any], name_of: Callable[[int], Hashable],
                   on_error: str, skipped: dict, what: str) -> Any | None:
    """``read(position)`` for position = index, index + 1, … (mod ``count``): the first that raises
    no ValueError, or None when none is readable. With ``on_error="raise"`` the error propagates;
    with ``"skip"`` each failing source is recorded once in ``skipped`` (``name_of(position)`` →
    reason) and logged as "skipped an unreadable ``what``"."""
    for attempt in range(count):
        position = (index + attempt) % count
        try:
            return read(position)
        except ValueError as error:
            if on_error == "raise":
                raise
            name = name_of(position)
            if name not in skipped:
                skipped[name] = str(error)
                logging.getLogger("maekit").warning("skipped an unreadable %s (on_error='skip'): %s", what, error)
    return None


def without_missing(items: Sequence[Item], path_of: Callable[[Item], Path], exists: Callable[[Item], bool],
                    on_error: str, skipped: dict, source: str) -> list[Item]:
    """The listed items whose file exists. A missing one is an error naming it (and how many more
    are missing), or with ``on_error="skip"`` is left out, recorded in ``skipped`` (path → "file not
    found") and logged once for the list ``source``."""
    missing = [item for item in items if not exists(item)]
    if missing and on_error == "raise":
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"{source} lists {path_of(missing[0])}, which does not exist{more}; fix the paths, or pass "
                         f"on_error='skip' to leave missing files out")
    for item in missing:
        skipped[path_of(item)] = "file not found"
    if missing:
        logging.getLogger("maekit").warning("%s: %d listed files not found, left out (on_error='skip'), e.g. %s",
                                            source, len(missing), path_of(missing[0]))
    absent = {id(item) for item in missing}
    return [item for item in items if id(item) not in absent]

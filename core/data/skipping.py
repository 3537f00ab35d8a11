"""The ``on_error`` policy every dataset shares: "raise" names a bad file in the error; "skip"
serves the next readable sample in its place, records each bad source once with the reason, and
logs it."""
from __future__ import annotations

import logging
from typing import Any, Callable, Hashable

__all__ = ["ON_ERROR", "check_on_error", "first_readable"]

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

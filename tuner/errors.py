"""Exceptions for usage errors: bad flags, files, names. Trial failures are records, not these."""
from __future__ import annotations

from typing import Any


class UsageError(Exception):
    """Wrong input from the user (flag, file, model name, JSON). The CLIs print it on one line
    and exit with code 2. The message names what is wrong and where."""


class ConfigError(UsageError, ValueError):
    """A configuration value outside its domain; raised by the config dataclasses."""


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)``, shortened: messages quote values from files that may hold anything."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class UnsupportedDeviceError(ValueError):
    """No kernel library exists for the requested device."""

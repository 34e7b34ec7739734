"""Type aliases shared by every layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

#: A progress callback, called as ``progress(description, completed, total)``.
Progress: TypeAlias = Callable[[str, int, int], None]

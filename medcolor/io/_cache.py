"""A small per-process cache of decoded volumes, keyed by file and modification time (thread-safe)."""
from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable


class VolumeCache:
    """The last ``size`` values ``load(path)`` gave, by (path, mtime): a volume read slice by slice is
    decoded once, not once per slice."""

    def __init__(self, size: int = 2) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, float], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, load: Callable[[Path], Any]) -> Any:
        key = (str(path), path.stat().st_mtime)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = load(path)
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

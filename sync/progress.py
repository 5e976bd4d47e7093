"""Progress for long work: a bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import TextIO

log = logging.getLogger("sync.progress")


class Progress:
    """Counts items done; redraws at most a few times a second."""

    def __init__(
        self,
        label: str,
        total: int | None = None,
        stream: TextIO | None = None,
        interval: float = 5.0,
    ) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.failed = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.interval = 0.2 if self.tty else interval
        self._last = 0.0
        self._lock = threading.Lock()
        self._start = time.monotonic()

    def advance(self, failed: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.failed += int(failed)
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                self._show()

    def _show(self) -> None:
        rate = self.done / max(1e-6, time.monotonic() - self._start)
        total = f"/{self.total}" if self.total else ""
        text = f"{self.label}: {self.done}{total} items, {self.failed} failed, {rate:.1f}/s"
        if self.tty:
            bar = ""
            if self.total:
                filled = int(30 * self.done / self.total)
                bar = "[" + "#" * filled + "." * (30 - filled) + "] "
            self.stream.write("\r" + bar + text)
            self.stream.flush()
        else:
            log.info(text)

    def close(self) -> None:
        with self._lock:
            if self.done:
                self._show()
            if self.tty and self.done:
                self.stream.write("\n")

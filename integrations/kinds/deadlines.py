"""Timeouts for every kind's requests: one thread for the whole process, not one per request."""
from __future__ import annotations

import heapq
import itertools
import threading
import time
from typing import Callable

__all__ = ["Deadline", "Deadlines", "deadlines"]


class Deadline:
    """A callback due at a time; ``fired`` once it has run, ``cancel()`` before that stops it."""

    def __init__(self, due: float, callback: Callable[[], None]) -> None:
        self.due, self.callback = due, callback
        self.fired = self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __enter__(self) -> Deadline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()


class Deadlines:
    """One thread for every timeout of this process: a query's costs a heap push, not a thread."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None

    def schedule(self, seconds: float, callback: Callable[[], None]) -> Deadline:
        deadline = Deadline(time.monotonic() + seconds, callback)
        with self._wakeup:
            heapq.heappush(self._heap, (deadline.due, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wakeup.notify()
        return deadline

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)  # cancelled ones leave as they come up
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._wakeup.wait(timeout=wait)
                    continue
                _, _, due = heapq.heappop(self._heap)
            due.fired = True
            try:
                due.callback()
            except Exception:  # a callback's failure must not stop every other timeout
                pass


deadlines = Deadlines()

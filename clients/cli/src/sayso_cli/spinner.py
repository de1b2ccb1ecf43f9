"""A spinner with the elapsed time, on stderr, only when stderr is a terminal.

Anywhere else (CI logs, pipes, files) it writes one plain line instead, so logs stay readable.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TextIO

from sayso_cli.durations import format_elapsed

FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


class Spinner:
    def __init__(
        self, label: str, stream: TextIO, *, interactive: bool | None = None, quiet: bool = False
    ) -> None:
        self.label = label
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self.quiet = quiet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0

    def __enter__(self) -> Spinner:
        self._started = time.monotonic()
        if self.quiet:
            return self
        if not self.interactive:
            self.stream.write(f"{self.label}\n")
            self.stream.flush()
            return self
        self._thread = threading.Thread(target=self._spin, name="sayso-spinner", daemon=True)
        self._thread.start()
        return self

    def _spin(self) -> None:
        frame = 0
        while not self._stop.is_set():
            elapsed = format_elapsed(time.monotonic() - self._started)
            self.stream.write(f"\r\x1b[2K{FRAMES[frame % len(FRAMES)]} {self.label} {elapsed}")
            self.stream.flush()
            frame += 1
            self._stop.wait(0.1)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            # Clear the spinner's line so the answer starts on a clean one.
            self.stream.write("\r\x1b[2K")
            self.stream.flush()

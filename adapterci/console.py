"""Where stage messages go: plain lines on stderr, progress bars only when stderr is a terminal (not CI logs)."""

from __future__ import annotations

import sys


def is_terminal() -> bool:
    """True when progress bars may be drawn (stderr is a terminal)."""
    return sys.stderr.isatty()


def log_line(line: str) -> None:
    """The default log of the stages: one flushed line on stderr."""
    print(line, file=sys.stderr, flush=True)

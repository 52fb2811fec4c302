"""A one-line progress report for long runs (training, fine-tuning) on a terminal or in a log."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("emoji-train")


class Progress:
    """A one-line progress report with ETA; a bar on a terminal, a log line every few seconds elsewhere."""

    def __init__(self, label: str, every_s: float = 15.0):
        self.label, self.every_s, self.last = label, every_s, 0.0
        self.tty = sys.stderr.isatty()

    def update(self, fraction: float, step: int, eta_s: float, **metrics: float) -> None:
        now = time.monotonic()
        if now - self.last < (0.5 if self.tty else self.every_s) and fraction < 1:
            return
        self.last = now
        bar = "#" * int(20 * fraction) + "-" * (20 - int(20 * fraction))
        stats = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        line = f"{self.label} [{bar}] {100 * fraction:5.1f}% step {step} {stats} eta {eta_s / 60:.1f} min"
        if self.tty:
            sys.stderr.write("\r" + line + " " * 4)
            sys.stderr.flush()
        else:
            log.info(line)

    def close(self) -> None:
        if self.tty:
            sys.stderr.write("\n")

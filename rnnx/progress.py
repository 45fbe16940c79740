"""The Trainer's progress display: one line on stderr."""
import sys
import time


class Progress:
    """One line on stderr, rewritten at most every 0.1 s; silent when disabled."""

    def __init__(self, enabled, total):
        self.enabled, self.total, self.done, self.last = enabled, total, 0, 0.0

    def update(self, epoch, epochs, loss):
        self.done += 1
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.1 and self.done < self.total):
            return
        self.last = now
        filled = int(30 * self.done / max(self.total, 1))
        sys.stderr.write(f"\repoch {epoch}/{epochs} [{'#' * filled}{'.' * (30 - filled)}] "
                         f"{self.done}/{self.total} loss {loss:.4g}  ")
        sys.stderr.flush()

    def close(self):
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()

"""The one clock nbtrack stamps runs, metrics and records with."""

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as MLflow stores times."""
    return time.time_ns() // 1_000_000

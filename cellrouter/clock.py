"""Where cellrouter reads the time: one replaceable clock.

Cell health (down intervals, probe schedules) and scatter-gather ask this
module instead of :mod:`time`, so a test or a simulation can move time
(:func:`use`) instead of sleeping.
"""

from __future__ import annotations

import time

__all__ = ["Clock", "current", "use"]


class Clock:
    """Monotonic seconds for intervals, wall-clock seconds for timestamps."""

    monotonic = staticmethod(time.monotonic)
    time = staticmethod(time.time)


_clock = Clock()


def current() -> Clock:
    """The clock in use."""
    return _clock


def use(clock: Clock) -> Clock:
    """Read the time from ``clock`` from now on; returns the previous one."""
    global _clock
    previous, _clock = _clock, clock
    return previous

"""Test tools for Runestone and its users: a fake clock and a fault-injecting fake upstream."""

from __future__ import annotations

from runestone.testing.clock import FakeClock

__all__ = ["FakeClock"]

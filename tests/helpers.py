"""Shared by the tests that wait on real processes: every wait has a deadline."""

import time


def wait_until(predicate, timeout: float, what: str, poll: float = 0.2):
    """The first truthy value of `predicate()`, polled every `poll` s; fails after `timeout` s."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := predicate():
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

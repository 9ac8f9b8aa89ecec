"""The cache lock: a second taker waits for the first, and its wait stays cancellable.

The caches themselves (teacher once, one student per structural ratio) are checked end to end by
tests/test_studies_real.py."""
from __future__ import annotations

import threading

from backend.kd.callbacks import CallbackList, Callbacks, JobCancelled
from backend.models.teachers import cache_lock


def test_cache_lock_waits_and_stays_cancellable(tmp_path):
    path = tmp_path / "cache" / "entry"
    stop = threading.Event()

    class Stopper(Callbacks):
        def should_stop(self) -> bool:
            return stop.is_set()

    cb = CallbackList(Stopper())
    with cache_lock(path, check=cb.check_stop):
        outcome: list[str] = []

        def waiter() -> None:
            try:
                with cache_lock(path, check=cb.check_stop, poll_s=0.05):
                    outcome.append("acquired")
            except JobCancelled:
                outcome.append("cancelled")

        thread = threading.Thread(target=waiter)
        thread.start()
        thread.join(0.3)
        assert thread.is_alive() and outcome == []  # held by us: it waits
        stop.set()
        thread.join(5)
    assert outcome == ["cancelled"]
    stop.clear()
    with cache_lock(path, check=cb.check_stop):  # released by both
        pass

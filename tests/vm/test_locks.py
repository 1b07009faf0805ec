"""The guest slots: never more holders than slots, across independent lock files."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from pybpfasm.lab.vm.locks import one_of


def test_at_most_two_holders_at_once(tmp_path: Path) -> None:
    holding, peak, seen = 0, 0, []
    guard = threading.Lock()

    def guest() -> None:
        nonlocal holding, peak
        with one_of(tmp_path, 2, poll=0.01) as slot:
            with guard:
                holding += 1
                peak = max(peak, holding)
                seen.append(slot)
            time.sleep(0.2)
            with guard:
                holding -= 1

    threads = [threading.Thread(target=guest) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 2
    assert sorted(set(seen)) == [0, 1] and len(seen) == 5

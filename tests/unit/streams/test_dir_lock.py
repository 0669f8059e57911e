"""The directory lock: one holder at a time, a clear error naming the holder, released on close."""

from __future__ import annotations

import os

import pytest

from streams.dir_lock import DirInUse, DirLock, in_use


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    d = tmp_path / "w"
    assert not in_use(d)
    with DirLock(d, holder="another worker"):
        assert in_use(d)
        with pytest.raises(DirInUse, match=rf"{d} is in use by another worker \(pid {os.getpid()}\)"):
            DirLock(d, holder="another worker").acquire()
    assert not in_use(d)
    with DirLock(d):  # free again once released
        pass

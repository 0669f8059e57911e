"""Two workers with one id never share a data dir: the second stops at once with a clear error."""

from __future__ import annotations

from streams.dir_lock import DirLock


def test_a_second_worker_with_the_same_id_is_refused_before_connecting(tmp_path, monkeypatch, capsys):
    from rlsizer.cli import main

    monkeypatch.setenv("RLSIZER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RLSIZER_KAFKA_BOOTSTRAP", "127.0.0.1:1")  # nothing listens: it must not get that far
    with DirLock(tmp_path / "worker" / "7"):  # the first worker with id 7
        assert main(["worker", "--id", "7"]) == 2
    err = capsys.readouterr().err
    assert "rlsizer worker:" in err and "worker/7 is in use by another worker with id '7' (pid" in err, err

"""The data dir: created private, and an open one tightened, with each path named."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from overdue import datadir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_dir_is_private(tmp_path: Path) -> None:
    home = tmp_path / "new" / "home"
    assert datadir.prepare(home) == []
    assert _mode(home) == datadir.dir_mode()
    assert datadir.dir_mode() == (0o710 if os.geteuid() == 0 else 0o700)


def test_an_open_data_dir_is_tightened_and_each_path_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "notices").mkdir(parents=True)
    home.chmod(0o755)
    (home / "notices").chmod(0o755)
    (home / "temporal.db").write_bytes(b"")
    (home / "temporal.db").chmod(0o644)
    (home / "notices" / "L-1.html").write_text("Ann Lee")
    (home / "notices" / "L-1.html").chmod(0o664)
    (home / "postgres").mkdir(mode=0o700)
    (home / "postgres" / "PG_VERSION").write_text("18")
    (home / "postgres" / "PG_VERSION").chmod(0o640)  # PostgreSQL's own rules: left alone

    tightened = datadir.prepare(home)

    assert sorted(tightened) == [
        f"{home} (was 0755, now {datadir.dir_mode():04o})",
        f"{home / 'notices'} (was 0755, now 0700)",
        f"{home / 'notices' / 'L-1.html'} (was 0664, now 0600)",
        f"{home / 'temporal.db'} (was 0644, now 0600)",
    ]
    assert _mode(home / "temporal.db") == 0o600
    assert _mode(home / "notices" / "L-1.html") == 0o600
    assert _mode(home / "postgres" / "PG_VERSION") == 0o640
    assert datadir.prepare(home) == []


def test_a_private_file_is_written_whole_and_0600_over_a_looser_one(tmp_path: Path) -> None:
    path = tmp_path / "stack.json"
    path.write_text("old")
    path.chmod(0o644)
    datadir.write_private(path, "{}")
    assert path.read_text() == "{}"
    assert _mode(path) == 0o600
    assert not (tmp_path / "stack.json.partial").exists()

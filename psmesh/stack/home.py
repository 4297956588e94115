"""The runtime directory (``PSMESH_HOME``, default ``.psmesh/``) and how it is deleted.

``psmesh demo --fresh`` starts from empty servers by deleting the runtime
directory. A mistaken ``PSMESH_HOME`` (the user's home, the checkout) must
never be deleted, so the directory is deleted only when it holds nothing but
what psmesh itself puts there, and is neither the filesystem root, the user's
home, the repository nor a parent of it. Otherwise nothing is deleted.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from psmesh.stack.exceptions import StackError

#: Everything psmesh creates directly in the runtime directory: the servers' data (kafka/, pg/), the logs and pid
#: files (logs/, run/), the captures' state (cdc/, streams/cli.py), the processor workers' tables (processors/,
#: processors/app.py) and the test stack's lock file (.lock, tests/integration).
RUNTIME_ENTRIES = frozenset({"kafka", "pg", "logs", "run", "cdc", "processors", ".lock"})


def protected_dirs() -> list[Path]:
    """Directories that are never deleted, nor any of their parents: the repository, the user's home, ``/``."""
    repository = Path(__file__).resolve().parents[2]
    return [repository, Path.home(), Path("/")]


def runtime_dir_problem(home: Path, protected: Iterable[Path] | None = None) -> str | None:
    """Why ``home`` must not be deleted, or None when it is psmesh's runtime directory (or does not exist)."""
    if not home.exists() and not home.is_symlink():
        return None
    if home.is_symlink() or not home.is_dir():
        return f"{home} is not a directory psmesh created (a symbolic link or a file)"
    resolved = home.resolve()
    for keep in protected_dirs() if protected is None else protected:
        keep = keep.resolve()
        if keep == resolved or keep.is_relative_to(resolved):
            what = "is" if keep == resolved else "contains"
            return f"{home} {what} {keep}, which psmesh never deletes"
    foreign = sorted(entry.name for entry in resolved.iterdir() if entry.name not in RUNTIME_ENTRIES)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        return (f"{home} does not look like a psmesh runtime directory: it holds {shown}, which psmesh does not "
                f"create (it creates only {', '.join(sorted(RUNTIME_ENTRIES))})")
    return None


def remove_runtime_dir(home: Path, protected: Iterable[Path] | None = None) -> bool:
    """Delete the runtime directory; False when there was none. ``StackError``, with nothing deleted, when ``home``
    is not psmesh's runtime directory (``runtime_dir_problem``)."""
    problem = runtime_dir_problem(home, protected)
    if problem is not None:
        raise StackError(f"not deleting {home} (PSMESH_HOME): {problem}; check PSMESH_HOME, or delete it yourself")
    if not home.exists():
        return False
    try:
        shutil.rmtree(home)
    except OSError as exc:
        raise StackError(f"cannot delete the runtime directory {home}: {exc}") from exc
    return True

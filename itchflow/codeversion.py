"""Which version of the project's Python code a process runs, to catch stale code in TaskManagers.

In PyFlink's thread mode the Python interpreter lives as long as the TaskManager: modules a job
imported stay loaded (``sys.modules``) for every later job. After the code on disk changes, a new
job would run the *old* ``itchflow`` modules -- or a mix of old and new ones, for modules first
imported later -- and give wrong results without an error. So:

* every job computes :func:`source_fingerprint` when it is built (on the client) and passes it to
  its functions, which call :func:`check_loaded` in ``open()``: it fails with a clear message when
  the TaskManager's interpreter loaded other code (:data:`LOADED`, fixed when this module was first
  imported there, i.e. with the rest of the job's modules);
* the local stack records the fingerprint its TaskManager started with and restarts it before a
  submission when the code changed (``itchflow submit`` does it; see
  :meth:`itchflow.stack.manager.Stack.refresh_taskmanager`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("itchflow", "connectors", "jobs")
"""The project's Python packages that jobs import."""


class StaleCodeError(RuntimeError):
    """The process runs other project code than the job was built from."""


def source_fingerprint(root: Path = PROJECT_ROOT, packages: tuple[str, ...] = PACKAGES) -> str:
    """A short hash over every ``.py`` and ``.c`` file of ``packages`` under ``root`` (paths and
    contents): a C extension is loaded once per process like a module."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted([*(root / package).rglob("*.py"), *(root / package).rglob("*.c")]):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


LOADED = source_fingerprint()
"""The fingerprint of the code on disk when this process first imported this module."""


def check_loaded(expected: str, loaded: str | None = None) -> None:
    """Raise :class:`StaleCodeError` unless this process loaded the code ``expected`` names."""
    loaded = LOADED if loaded is None else loaded
    if loaded != expected:
        raise StaleCodeError(
            f"this TaskManager's Python interpreter holds project code {loaded}, loaded by an earlier "
            f"job, but this job was built from {expected}: PyFlink's thread mode keeps modules loaded "
            "for the TaskManager's lifetime. Restart the TaskManagers, then submit again "
            "(local stack: `itchflow submit` does it for you; or `itchflow stack down && itchflow stack up`)."
        )

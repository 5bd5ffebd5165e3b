"""The project's C extensions, compiled by ``itchflow setup`` with the system C compiler.

* ``itchflow/book/_cbook.c`` -- the order book and the order-book stage's event loop
  (:mod:`itchflow.book.native`);
* ``itchflow/normalize/_cscan.c`` -- the normalizer's fast path (frequent valid messages to rows,
  rows to packed columns; :mod:`itchflow.normalize.normalizer`);
* ``itchflow/avro/_cavro.c`` -- the Avro encoding of the raw and normalized bundle envelopes
  (:mod:`itchflow.avro.bundle`, :mod:`itchflow.normalize.bundle`; fastavro is the twin);
* ``itchflow/analytics/_cflow.c`` -- order-flow imbalance and liquidity from the books' rows
  (:mod:`itchflow.analytics.flow_stage`; the cores :mod:`itchflow.analytics.ofi` and
  :mod:`itchflow.analytics.liquidity` are the twin), and the RowBinary of their rows
  (:mod:`itchflow.sinks.flow_outputs`, whose Python encoders are the twin).

Each has a pure-Python twin that stays the reference (the tests compare them) and the fallback: without
a compiler set-up only warns, and the jobs run the Python code. ``ITCHFLOW_NATIVE=python`` makes the
jobs run the Python code anyway (A/B runs); ``ITCHFLOW_NATIVE=native`` makes a missing build an error. A module is rebuilt when its source is
newer than the compiled file. The compiled files sit next to their sources (git-ignored), so the
TaskManagers' Python workers import them with the rest of the project.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sysconfig
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent
_SUFFIX = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


@dataclass(frozen=True)
class Extension:
    source: Path

    @property
    def target(self) -> Path:
        return self.source.with_name(self.source.stem + _SUFFIX)

    def stale(self) -> bool:
        """Whether the compiled module is missing or older than its source."""
        return not self.target.exists() or self.target.stat().st_mtime < self.source.stat().st_mtime


BOOK = Extension(_ROOT / "book" / "_cbook.c")
SCAN = Extension(_ROOT / "normalize" / "_cscan.c")
AVRO = Extension(_ROOT / "avro" / "_cavro.c")
FLOW = Extension(_ROOT / "analytics" / "_cflow.c")
EXTENSIONS = (BOOK, SCAN, AVRO, FLOW)


_checked_built = False
"""Whether ``ITCHFLOW_NATIVE=native`` found every module built (checked once per process)."""


def use_native() -> bool:
    """Whether compiled code that is built should be used (``ITCHFLOW_NATIVE``: auto, python, native)."""
    global _checked_built
    choice = os.environ.get("ITCHFLOW_NATIVE", "auto").strip().lower() or "auto"
    if choice == "auto":
        return True
    if choice == "python":
        return False
    if choice == "native":
        if _checked_built:
            return True
        missing = [extension.target.name for extension in EXTENSIONS if not extension.target.exists()]
        if missing:
            raise RuntimeError(
                f"ITCHFLOW_NATIVE=native but {', '.join(missing)} not built: run `./dev setup` "
                "(needs a C compiler: `sudo apt-get install -y gcc`)"
            )
        _checked_built = True  # this runs per segment: look at the files once
        return True
    raise ValueError(f"ITCHFLOW_NATIVE must be auto, python or native, not {choice!r}")


def native_function(module: str, name: str) -> Any:
    """The compiled function ``name`` of extension ``module`` when it is built and ``ITCHFLOW_NATIVE``
    allows compiled code, else None (the caller runs its Python twin). Imported once, late."""
    return _compiled(module, name) if use_native() else None


@cache
def _compiled(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except ImportError:  # not built
        return None


def compiler() -> str | None:
    """The C compiler to build with: ``$CC``, else ``cc``/``gcc``/``clang`` on PATH."""
    for candidate in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if candidate and shutil.which(candidate.split()[0]):
            return candidate
    return None


def build(log=print) -> bool:
    """Compile every stale extension; False (with advice logged) without a compiler or the Python
    headers, so set-up still succeeds and the jobs run the Python code."""
    stale = [extension for extension in EXTENSIONS if extension.stale()]
    if not stale:
        return True
    cc = compiler()
    include = sysconfig.get_paths()["include"]
    if cc is None or not (Path(include) / "Python.h").exists():
        missing = "a C compiler" if cc is None else f"the Python headers ({include}/Python.h)"
        log(
            f"WARNING: {missing} not found: the jobs will run their pure-Python order book and normalizer "
            "(several times slower). Install it (Debian/Ubuntu: `sudo apt-get install -y gcc python3-dev`) "
            "and run `./dev setup` again."
        )
        return False
    for extension in stale:
        target = extension.target
        partial = target.with_name(target.name + ".part")
        command = [*cc.split(), "-O2", "-g0", "-fPIC", "-shared", "-Wall", "-Wno-unused-parameter"]
        command += ["-I", include, str(extension.source), "-o", str(partial)]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(
                f"compiling {extension.source.name} failed ({' '.join(command)}):\n{result.stderr[-3000:]}"
            )
        partial.replace(target)
        log(f"compiled {extension.source.relative_to(_ROOT.parent)} into {target.name}")
    return True

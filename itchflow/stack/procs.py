"""Process bookkeeping for the local stack: start, record, find and stop exactly our processes.

Each component runs in its own session (process group), so stopping it also stops the
children it spawned (e.g. PyFlink's Python workers), and nothing else. A record
(``<run_dir>/<name>.json``) keeps the PID, the command line and the start time as the
kernel reports it: a PID that has been reused by another program does not match the record
and is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """What we know about a process we started."""

    name: str
    pid: int
    start_ticks: int  # field 22 of /proc/<pid>/stat: distinguishes a reused PID
    command: tuple[str, ...]
    log_file: str
    port: int | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data["command"] = list(self.command)
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ProcessRecord:
        data = json.loads(text)
        data["command"] = tuple(data["command"])
        return cls(**data)


def process_start_ticks(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    if fields and fields[0] == "Z":  # zombie: exited, only waiting to be reaped
        return None
    return int(fields[19])


def is_alive(record: ProcessRecord) -> bool:
    """True when the recorded process still runs (same PID *and* same start time)."""
    return process_start_ticks(record.pid) == record.start_ticks


class ProcessRegistry:
    """The records of the processes the stack started, one JSON file per component."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def _path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def get(self, name: str) -> ProcessRecord | None:
        path = self._path(name)
        if not path.exists():
            return None
        try:
            return ProcessRecord.from_json(path.read_text())
        except (ValueError, KeyError, TypeError):
            return None  # a damaged record cannot identify a process: treat as absent

    def all(self) -> list[ProcessRecord]:
        if not self.run_dir.exists():
            return []
        records = (self.get(path.stem) for path in sorted(self.run_dir.glob("*.json")))
        return [record for record in records if record is not None]

    def put(self, record: ProcessRecord) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._path(record.name).with_suffix(".tmp")
        tmp.write_text(record.to_json())
        tmp.replace(self._path(record.name))

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def spawn(
    name: str,
    command: Sequence[str],
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    port: int | None = None,
) -> ProcessRecord:
    """Start ``command`` detached in its own session, output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    ticks = process_start_ticks(proc.pid)
    if ticks is None:  # exited at once: keep a record anyway so the caller reports the log
        ticks = -1
    return ProcessRecord(name, proc.pid, ticks, tuple(command), str(log_file), port)


def stop(record: ProcessRecord, timeout_s: float = 20.0) -> bool:
    """Stop the recorded process and its process group: SIGTERM, then SIGKILL after ``timeout_s``.

    Returns True if something was stopped. Never signals a process that is not ours.
    """
    if not is_alive(record):
        _reap(record.pid)
        return False
    _signal_group(record.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(record.pid)
        if not is_alive(record) and not _group_alive(record.pid):
            return True
        time.sleep(0.1)
    _signal_group(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and (is_alive(record) or _group_alive(record.pid)):
        _reap(record.pid)
        time.sleep(0.05)
    return True


def _signal_group(pid: int, sig: int) -> None:
    # start_new_session made the process the leader of a group whose id is its PID
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        os.kill(pid, sig)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return bool(group_members(pgid))


def group_members(pgid: int) -> list[int]:
    """PIDs (not zombies) whose process group is ``pgid``."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_in_use(host: str, port: int) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def port_bindable(host: str, port: int) -> bool:
    """True when we could listen on ``host:port`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def listening_pids(port: int) -> set[int]:
    """PIDs that own a listening TCP socket on ``port`` (from /proc; best effort)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle)
                for line in handle:
                    parts = line.split()
                    local, state, inode = parts[1], parts[3], parts[9]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        inodes.add(inode)
        except OSError:
            continue
    if not inodes:
        return set()
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    pids.add(int(entry))
                    break
        except OSError:
            continue
    return pids

"""Process bookkeeping: we stop exactly what we started, and port checks tell the truth."""

import os
import socket
import sys
import time
from dataclasses import replace
from pathlib import Path

from itchflow.stack import procs

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
# a parent that starts a child in the same process group, like a TaskManager with Python workers
PARENT_WITH_CHILD = [
    sys.executable,
    "-c",
    "import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)",
]


def test_spawned_process_is_recorded_alive_and_stopped(tmp_path: Path) -> None:
    record = procs.spawn("sleeper", SLEEPER, tmp_path / "sleeper.log")
    try:
        assert procs.is_alive(record)
        assert record.start_ticks == procs.process_start_ticks(record.pid)
    finally:
        assert procs.stop(record, timeout_s=5)
    assert not procs.is_alive(record)
    assert procs.stop(record) is False  # idempotent: nothing left to stop


def test_stop_takes_the_whole_process_group(tmp_path: Path) -> None:
    record = procs.spawn("parent", PARENT_WITH_CHILD, tmp_path / "parent.log")
    deadline = time.monotonic() + 10
    while len(procs.group_members(record.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(procs.group_members(record.pid)) == 2
    procs.stop(record, timeout_s=5)
    assert procs.group_members(record.pid) == []


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    """A record whose start time differs (the PID now belongs to someone else) is never signalled."""
    record = procs.spawn("sleeper", SLEEPER, tmp_path / "sleeper.log")
    try:
        impostor = replace(record, start_ticks=record.start_ticks - 1)
        assert not procs.is_alive(impostor)
        assert procs.stop(impostor) is False
        assert procs.is_alive(record)  # the real process was left alone
    finally:
        procs.stop(record, timeout_s=5)


def test_registry_round_trips_and_ignores_damaged_records(tmp_path: Path) -> None:
    registry = procs.ProcessRegistry(tmp_path / "run")
    record = procs.ProcessRecord("kafka", 4242, 99, ("tansu", "broker"), "/x/kafka.log", 9092)
    registry.put(record)
    assert registry.get("kafka") == record
    (tmp_path / "run" / "broken.json").write_text("{not json")
    assert registry.get("broken") is None
    assert registry.all() == [record]
    registry.remove("kafka")
    assert registry.get("kafka") is None


def test_port_checks_see_a_listener_and_its_pid() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert procs.port_in_use("127.0.0.1", port)
        assert not procs.port_bindable("127.0.0.1", port)
        assert os.getpid() in procs.listening_pids(port)
    assert not procs.port_in_use("127.0.0.1", port)
    assert procs.port_bindable("127.0.0.1", port)

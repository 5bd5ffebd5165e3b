"""``itchflow stack up | down | status``: the embedded local stack as one unit."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from itchflow.config import StackConfig
from itchflow.errors import UserError
from itchflow.stack import procs
from itchflow.stack.components import COMPONENTS, PROMETHEUS_HINT, Component, Health, available_components
from itchflow.stack.topics import ensure_topics

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    name: str
    url: str
    pid: int | None
    running: bool
    health: Health


class Stack:
    """Start, inspect and stop the local stack described by a :class:`StackConfig`."""

    def __init__(self, config: StackConfig, log: Log = _stderr) -> None:
        self.config = config
        self.registry = procs.ProcessRegistry(config.run_dir)
        self.log = log
        #: what this machine can run (Prometheus is optional: without it the stack runs, and says so)
        self.components = available_components()

    # --- status ------------------------------------------------------------------------------
    def status(self) -> list[ComponentStatus]:
        result = []
        for component in self.components:
            record = self.registry.get(component.name)
            running = record is not None and procs.is_alive(record)
            health = component.health(self.config) if running else Health(False, "not running")
            result.append(
                ComponentStatus(
                    component.name,
                    component.url(self.config),
                    record.pid if running and record else None,
                    running,
                    health,
                )
            )
        return result

    def is_up(self) -> bool:
        return all(s.running and s.health.ok for s in self.status())

    # --- up ----------------------------------------------------------------------------------
    def up(self) -> bool:
        """Bring every component up and wait until healthy. Returns False if it was already up."""
        self.config.home.mkdir(parents=True, exist_ok=True)
        running = {c.name for c in self.components if self._running(c)}
        if len(running) == len(self.components) and self.is_up():
            self.log(f"stack already up (home {self.config.home})")
            ensure_topics(self.config, self.config.topics())
            return False
        self._check_ports(running)
        started = time.monotonic()
        if len(self.components) < len(COMPONENTS):
            self.log(PROMETHEUS_HINT)
        for component in self.components:
            if component.name in running:
                continue
            self._wait_for(component.depends_on)
            self._start(component)
        self._wait_for(tuple(c.name for c in self.components))
        ensure_topics(self.config, self.config.topics())
        self.log(f"stack up in {time.monotonic() - started:.0f}s (home {self.config.home})")
        return True

    def _running(self, component: Component) -> bool:
        record = self.registry.get(component.name)
        return record is not None and procs.is_alive(record)

    def _check_ports(self, running: set[str]) -> None:
        """Refuse, naming the port and its owner, when a port we need is taken by something else."""
        ours = {record.pid for record in self.registry.all() if procs.is_alive(record)}
        owners_by_port = {
            "kafka": "kafka",
            "clickhouse": "clickhouse",
            "redis": "redis",
            "flink": "flink-jobmanager",
            "flink-rpc": "flink-jobmanager",
            "prometheus": "prometheus",
            "metrics": "flink-jobmanager",
        }
        problems = []
        names = {c.name for c in self.components}
        for label, port in self.config.ports().items():
            if owners_by_port[label] in running or owners_by_port[label] not in names:
                continue
            if procs.port_bindable(self.config.host, port) and not procs.port_in_use(self.config.host, port):
                continue
            pids = procs.listening_pids(port) - ours
            who = f" by PID {', '.join(map(str, sorted(pids)))}" if pids else ""
            env_name = "ITCHFLOW_" + label.upper().replace("-", "_") + "_PORT"
            problems.append(
                f"port {port} ({label}) on {self.config.host} is already in use{who}. "
                f"Stop that process, or choose another port with --{label}-port or {env_name}."
            )
        if problems:
            raise UserError("cannot start the local stack:\n  " + "\n  ".join(problems))

    def refresh_taskmanager(self) -> bool:
        """Restart the TaskManagers if the project's code changed since they started; True if so.

        PyFlink's thread mode keeps the modules a job imported loaded for the TaskManager's
        lifetime (see :mod:`itchflow.codeversion`): without a restart, a job submitted after a code
        change would run the old code. Running jobs fail over to the new TaskManagers and restore
        from their last checkpoint.
        """

        if not self.taskmanagers_stale():
            return False
        managers = [c for c in self.components if c.name.startswith("flink-taskmanager")]
        self.log(
            "restarting the TaskManagers: the project's Python code changed since they started "
            "(thread mode keeps modules loaded; running jobs restore from their last checkpoint)"
        )
        for component in managers:
            record = self.registry.get(component.name)
            if record is not None:
                procs.stop(record)
                self.registry.remove(component.name)
        for component in managers:
            self._start(component)
        self._wait_for(tuple(c.name for c in managers))
        return True

    def taskmanagers_stale(self) -> bool:
        """Whether a running TaskManager started with other project code than is on disk now."""
        from itchflow.codeversion import source_fingerprint

        current = source_fingerprint()
        managers = [c for c in self.components if c.name.startswith("flink-taskmanager") and self._running(c)]
        return any(self.taskmanager_code(c.name) != current for c in managers)

    def taskmanager_code(self, name: str) -> str | None:
        """The code fingerprint TaskManager ``name`` started with (None if unknown)."""
        path = self._code_file(name)
        return path.read_text() if path.exists() else None

    def _code_file(self, name: str):
        return self.config.run_dir / f"{name}.code"

    def _start(self, component: Component) -> None:
        if component.name.startswith("flink-taskmanager"):
            from itchflow.codeversion import source_fingerprint

            self.config.run_dir.mkdir(parents=True, exist_ok=True)
            self._code_file(component.name).write_text(source_fingerprint())
        command = component.command(self.config)
        log_file = component.log_file(self.config)
        self.log(f"starting {component.name} (log: {log_file})")
        record = procs.spawn(
            component.name,
            command,
            log_file,
            env=component.env(self.config),
            port=component.port(self.config),
        )
        self.registry.put(record)

    def _wait_for(self, names: tuple[str, ...]) -> None:
        """Poll the health of ``names`` in parallel until all are healthy or the timeout passes."""
        if not names:
            return
        components = [c for c in self.components if c.name in names]
        deadline = time.monotonic() + self.config.startup_timeout_s
        pending = {c.name: c for c in components}
        last: dict[str, Health] = {}
        with ThreadPoolExecutor(max_workers=len(components)) as pool:
            while pending:
                for component in list(pending.values()):
                    record = self.registry.get(component.name)
                    if record is None or not procs.is_alive(record):
                        raise UserError(
                            f"{component.name} exited during start-up. Its log: {component.log_file(self.config)}\n"
                            + _tail(component.log_file(self.config))
                        )
                results = dict(
                    zip(pending, pool.map(lambda c: c.health(self.config), pending.values()), strict=True)
                )
                for name, health in results.items():
                    last[name] = health
                    if health.ok:
                        self.log(f"  {name}: healthy ({health.detail})")
                        del pending[name]
                if pending and time.monotonic() > deadline:
                    names_left = ", ".join(pending)
                    logs = "\n".join(
                        f"  {n}: {last[n].detail}; log: {pending[n].log_file(self.config)}" for n in pending
                    )
                    raise UserError(
                        f"timed out after {self.config.startup_timeout_s:.0f}s waiting for {names_left}:\n{logs}\n"
                        "Look at the log, then `itchflow stack down` and try again "
                        "(raise the limit with ITCHFLOW_STARTUP_TIMEOUT on a slow machine)."
                    )
                if pending:
                    time.sleep(0.5)

    # --- down ----------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop everything ``up`` started, in reverse order. Idempotent. Returns what was stopped."""
        stopped = []
        for component in reversed(COMPONENTS):
            record = self.registry.get(component.name)
            if record is None:
                continue
            if procs.stop(record):
                stopped.append(component.name)
                self.log(f"stopped {component.name} (PID {record.pid})")
            self.registry.remove(component.name)
        return stopped


def _tail(path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + line for line in text[-lines:])

"""``itchflow submit`` (the real ``flink run -d -py``) and ``itchflow jobs`` (Flink REST)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from itchflow import bootstrap
from itchflow.config import PROJECT_ROOT, StackConfig
from itchflow.errors import UserError
from itchflow.stack.cli import add_stack_options, stack_config_from_args
from itchflow.stack.components import render_flink_conf

JOBS_DIR = PROJECT_ROOT / "jobs"
JOB_ID_RE = re.compile(r"JobID\s+([0-9a-f]{32})")


@dataclass(frozen=True, slots=True)
class JobInfo:
    job_id: str
    name: str
    state: str
    start_time_ms: int


SHARED_MODULES = ("common", "operators")
"""Modules of ``jobs/`` that the entry points import; not jobs themselves."""


def job_script(name: str) -> Path:
    """``smoke`` or ``jobs/smoke.py`` -> the job file; a readable error lists what exists."""
    candidate = Path(name)
    if candidate.suffix == ".py" and candidate.exists():
        return candidate.resolve()
    script = JOBS_DIR / f"{candidate.stem}.py"
    if script.exists() and not candidate.stem.startswith("_") and candidate.stem not in SHARED_MODULES:
        return script
    available = sorted(
        p.stem for p in JOBS_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem not in SHARED_MODULES
    )
    raise UserError(f"no job named {name!r}; available: {', '.join(available)}")


def default_job_args(config: StackConfig) -> list[str]:
    """Addresses of the local stack, passed to every job unless the user gives their own."""
    return [
        "--bootstrap-servers",
        config.bootstrap_servers,
        "--clickhouse-url",
        config.clickhouse_url,
        "--redis-url",
        config.redis_url,
    ]


def flink_environment(config: StackConfig) -> dict[str, str]:
    env = dict(os.environ)
    env["FLINK_CONF_DIR"] = str(render_flink_conf(config))
    env["FLINK_LOG_DIR"] = str(config.log_dir / "flink")
    env["FLINK_HOME"] = str(bootstrap.flink_home())
    return env


def submit(
    config: StackConfig,
    job: str,
    job_args: list[str],
    parallelism: int | None = None,
    from_savepoint: str | None = None,
    rest_address: str | None = None,
    allow_non_restored_state: bool = False,
) -> str:
    """Submit ``job`` detached with ``flink run``; returns the Flink job id."""
    script = job_script(job)
    flink = bootstrap.flink_home() / "bin" / "flink"
    host, port = _rest_host_port(config, rest_address)
    command = [
        "bash",
        str(flink),
        "run",
        "-d",
        "-Drest.address=" + host,
        "-Drest.port=" + str(port),
        "-py",
        str(script),
        "-pyexec",
        sys.executable,
        "-pyclientexec",
        sys.executable,
    ]
    if parallelism:
        command += ["-p", str(parallelism)]
    if from_savepoint:
        # `flink run -s` restores in NO_CLAIM mode unless told otherwise, whatever config.yaml says
        command += ["-s", snapshot_to_claim(config, from_savepoint), "--claimMode", "claim"]
        if allow_non_restored_state:
            command.append("--allowNonRestoredState")
    command += job_args
    if parallelism and "--parallelism" not in job_args and script.parent == JOBS_DIR:
        command += ["--parallelism", str(parallelism)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=flink_environment(config), cwd=PROJECT_ROOT
    )
    output = result.stdout + result.stderr
    match = JOB_ID_RE.search(output)
    if result.returncode != 0 or not match:
        raise UserError(
            f"`flink run` failed for {script.name} (exit {result.returncode}):\n{_last_lines(output, 25)}\n"
            f"Check that the Flink cluster answers at http://{host}:{port} (`itchflow stack status`)."
        )
    return match.group(1)


def snapshot_to_claim(config: StackConfig, snapshot: str) -> str:
    """What a job restored from ``snapshot`` may own: ``flink-conf/config.yaml`` restores in CLAIM mode
    (the changelog state backend cannot take NO_CLAIM's first full snapshot), and a claimed snapshot is
    deleted once later checkpoints subsume it. A local savepoint is therefore copied to
    ``<savepoint dir>/claimed/`` (savepoints are self-contained) and the copy is claimed, so the one
    the user took stays intact. A retained checkpoint (``chk-N``: its files live in the job's shared
    folder) and a remote URI are claimed as they are."""
    parsed = urllib.parse.urlparse(snapshot)
    if parsed.scheme not in ("", "file"):
        return snapshot
    folder = Path(parsed.path if parsed.scheme else snapshot)
    if folder.name == "_metadata":
        folder = folder.parent
    if folder.name.startswith("chk-") or not (folder / "_metadata").is_file():
        return snapshot  # not a savepoint folder: Flink reports what is wrong with it
    copy = config.savepoint_dir / "claimed" / f"{folder.name}-{uuid.uuid4().hex[:8]}"
    shutil.copytree(folder, copy)
    return str(copy)


def _rest_host_port(config: StackConfig, rest_address: str | None) -> tuple[str, int]:
    if not rest_address:
        return config.host, config.flink_port
    address = rest_address.removeprefix("http://").removeprefix("https://").rstrip("/")
    host, _, port = address.partition(":")
    return host, int(port or 8081)


def rest_url(config: StackConfig, rest_address: str | None = None) -> str:
    host, port = _rest_host_port(config, rest_address)
    return f"http://{host}:{port}"


def rest_get(base_url: str, path: str, timeout: float = 10.0) -> dict:
    try:
        with urllib.request.urlopen(base_url + path, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(
            f"Flink REST at {base_url} unreachable ({exc}); is the stack up? `itchflow stack status`"
        ) from exc


def rest_request(
    base_url: str, path: str, method: str, body: dict | None = None, timeout: float = 30.0
) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            text = response.read()
            return json.loads(text) if text else {}
    except urllib.error.HTTPError as exc:
        raise UserError(f"Flink REST {method} {path} failed: {exc.code} {exc.read()[:500]!r}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise UserError(f"Flink REST at {base_url} unreachable ({exc})") from exc


def list_jobs(base_url: str) -> list[JobInfo]:
    overview = rest_get(base_url, "/jobs/overview")
    return [
        JobInfo(job["jid"], job["name"], job["state"], job.get("start-time", 0))
        for job in sorted(overview.get("jobs", []), key=lambda j: j.get("start-time", 0))
    ]


def wait_for_state(base_url: str, job_id: str, states: set[str], timeout_s: float = 120.0) -> str:
    """Poll until the job reaches one of ``states``; returns it. Fails fast on FAILED."""
    deadline = time.monotonic() + timeout_s
    state = "?"
    while time.monotonic() < deadline:
        state = rest_get(base_url, f"/jobs/{job_id}")["state"]
        if state in states:
            return state
        if state in ("FAILED", "CANCELED") and state not in states:
            exceptions = rest_get(base_url, f"/jobs/{job_id}/exceptions")
            root = (exceptions.get("root-exception") or "")[:2000]
            raise UserError(f"job {job_id} is {state}:\n{root}")
        time.sleep(1.0)
    raise UserError(f"job {job_id} still {state} after {timeout_s:.0f}s (wanted {', '.join(sorted(states))})")


def wait_until_tasks_running(
    base_url: str, job_id: str, timeout_s: float = 120.0, fail_on_exception: bool = False
) -> None:
    """RUNNING as a job is not enough: wait until every vertex runs (sources consume). With
    ``fail_on_exception``, a job that reports an exception meanwhile (e.g. restarting because it
    cannot restore its state) ends the wait at once."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        detail = rest_get(base_url, f"/jobs/{job_id}")
        if detail["state"] in ("FAILED", "CANCELED", "FINISHED"):
            wait_for_state(base_url, job_id, {"RUNNING"}, timeout_s=1)
        vertices = detail.get("vertices", [])
        if vertices and all(v["status"] == "RUNNING" for v in vertices):
            return
        if fail_on_exception:
            root = rest_get(base_url, f"/jobs/{job_id}/exceptions").get("root-exception")
            if root:
                raise UserError(f"job {job_id} is {detail['state']}: {root[:1500]}")
        time.sleep(1.0)
    raise UserError(f"job {job_id}: tasks not all RUNNING after {timeout_s:.0f}s")


def stop_with_savepoint(
    base_url: str, job_id: str, target_dir: str | None = None, timeout_s: float = 120.0
) -> str:
    """``flink stop`` through REST: savepoint then stop; returns the savepoint path."""
    body = {"drain": False, **({"targetDirectory": target_dir} if target_dir else {})}
    return _take_savepoint(base_url, job_id, "stop", body, timeout_s)


def trigger_savepoint(
    base_url: str, job_id: str, target_dir: str | None = None, timeout_s: float = 120.0
) -> str:
    """``flink savepoint`` through REST: a savepoint while the job keeps running; returns its path."""
    body = {"cancel-job": False, **({"target-directory": target_dir} if target_dir else {})}
    return _take_savepoint(base_url, job_id, "savepoints", body, timeout_s)


def _take_savepoint(
    base_url: str, job_id: str, action: str, body: dict[str, object], timeout_s: float
) -> str:
    """POST ``/jobs/<id>/<action>`` and wait for the savepoint it triggers; returns its location."""
    request_id = rest_request(base_url, f"/jobs/{job_id}/{action}", "POST", body)["request-id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = rest_get(base_url, f"/jobs/{job_id}/savepoints/{request_id}")
        if status["status"]["id"] == "COMPLETED":
            operation = status.get("operation", {})
            if "failure-cause" in operation:
                raise UserError(
                    f"savepoint of {job_id} failed: {operation['failure-cause'].get('stack-trace', '')[:1500]}"
                )
            return operation["location"]
        time.sleep(0.5)
    raise UserError(f"savepoint of job {job_id} did not complete within {timeout_s:.0f}s")


def cancel(base_url: str, job_id: str) -> None:
    rest_request(base_url, f"/jobs/{job_id}?mode=cancel", "PATCH")


_JOB_NAME_RE = re.compile(r'^JOB_NAME = "([^"]+)"', re.MULTILINE)


def script_job_name(script: Path) -> str:
    """The Flink job name a job script runs under (its ``JOB_NAME``), else ``itchflow-<stem>``."""
    match = _JOB_NAME_RE.search(script.read_text(encoding="utf-8"))
    return match.group(1) if match else "itchflow-" + script.stem.replace("_", "-")


def find_running_job(base_url: str, job: str) -> JobInfo:
    """The running job ``job`` names: a job id, a Flink job name or a job script (``market_data``)."""
    jobs = [j for j in list_jobs(base_url) if j.state == "RUNNING"]
    names = {job}
    if not re.fullmatch(r"[0-9a-f]{32}", job):
        with contextlib.suppress(UserError):  # not a job script: a job name
            names.add(script_job_name(job_script(job)))
    matches = [j for j in jobs if j.job_id == job or j.name in names]
    if not matches:
        running = ", ".join(f"{j.name} ({j.job_id})" for j in jobs) or "none"
        raise UserError(f"no running job {job!r}; running: {running}. `itchflow jobs` lists every job.")
    if len(matches) > 1:
        ids = ", ".join(j.job_id for j in matches)
        raise UserError(f"{len(matches)} running jobs are named {job!r} ({ids}): give the job id")
    return matches[0]


def job_parallelism(base_url: str, job_id: str) -> int:
    """The highest parallelism of the job's vertices (what ``-p`` gave it)."""
    return max(vertex["parallelism"] for vertex in rest_get(base_url, f"/jobs/{job_id}")["vertices"])


@dataclass(frozen=True, slots=True)
class Upgrade:
    old_job_id: str
    savepoint: str
    new_job_id: str
    parallelism: int


def upgrade(
    config: StackConfig,
    job: str,
    job_args: list[str],
    parallelism: int | None = None,
    rest_address: str | None = None,
    allow_non_restored_state: bool = False,
    timeout_s: float = 180.0,
    log=print,
) -> Upgrade:
    """Stop the running ``job`` (a job script) with a savepoint and submit the current code from it
    (at the old job's parallelism unless given), once the TaskManagers run the current code (local
    stack); returns the old and new job ids and the savepoint.

    Raises:
        UserError: no such job running, or the current code cannot restore the savepoint (then the
            new job is cancelled; the old one stays stopped and its savepoint stays intact, since a
            restore claims a copy of it -- the error says how to resume it).
    """
    script = job_script(job)
    base = rest_url(config, rest_address)
    old = find_running_job(base, script_job_name(script))
    parallelism = parallelism or job_parallelism(base, old.job_id)
    log(f"stopping {old.name} ({old.job_id}) with a savepoint ...")
    savepoint = stop_with_savepoint(base, old.job_id)
    log(f"savepoint: {savepoint}")
    if not rest_address:
        from itchflow.stack.manager import Stack

        Stack(config, log=log).refresh_taskmanager()
    log(f"submitting the current {script.stem} from it at parallelism {parallelism} ...")
    new_id = None
    try:
        new_id = submit(config, job, job_args, parallelism, savepoint, rest_address, allow_non_restored_state)
        wait_until_tasks_running(base, new_id, timeout_s, fail_on_exception=True)
    except UserError as error:
        if new_id is not None:
            cancel(base, new_id)
        raise UserError(
            f"{old.name} was not upgraded: the current code cannot restore its state.\n{error}\n\n"
            f"The old job ({old.job_id}) is stopped; its savepoint is intact at {savepoint}. Resume it "
            f"with the code that wrote it: `itchflow submit {script.stem} --from-savepoint {savepoint}`; "
            "or upgrade with --allow-non-restored-state to drop the state the current code has no "
            "operator for."
        ) from None
    return Upgrade(old.job_id, savepoint, new_id, parallelism)


def _last_lines(text: str, count: int) -> str:
    """The useful end of `flink run` output: the Python traceback if any, Java frames left out."""
    lines = [line for line in text.strip().splitlines() if not line.lstrip().startswith(("at ", "... "))]
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last)"):
            return "\n".join(lines[index : index + count])
    return "\n".join(lines[-count:])


# --- command line -------------------------------------------------------------------------------
def _add_rest_address(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rest-address", metavar="HOST:PORT", help="any Flink REST address (default: the local stack)"
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="submit a job from jobs/ with `flink run -d -py`",
        description="Submit a job from jobs/ with the real `flink run -d -py`. Arguments after `--` go to the job.",
        usage="itchflow submit JOB [options] [-- job arguments]",
    )
    parser.add_argument("job", help="job name in jobs/ (e.g. smoke) or a path to a job .py file")
    parser.add_argument("--parallelism", "-p", type=int, help="job parallelism")
    parser.add_argument("--from-savepoint", "-s", metavar="PATH", help="restore state from this savepoint")
    parser.add_argument(
        "--allow-non-restored-state", action="store_true", help="skip savepoint state with no operator"
    )
    _add_rest_address(parser)
    add_stack_options(parser)
    parser.set_defaults(func=_submit)

    savepoint = subparsers.add_parser(
        "savepoint",
        help="take a savepoint of a running job (and stop it with --stop)",
        description="Take a savepoint of a running job through Flink REST and print its path.",
    )
    savepoint.add_argument("job", help="job script (e.g. market_data), Flink job name or job id")
    savepoint.add_argument("--stop", action="store_true", help="stop the job with the savepoint")
    savepoint.add_argument("--target-directory", metavar="DIR", help="default: state.savepoints.dir")
    _add_rest_address(savepoint)
    add_stack_options(savepoint)
    savepoint.set_defaults(func=_savepoint)

    upgrade_parser = subparsers.add_parser(
        "upgrade",
        help="stop a running job with a savepoint and submit the current code from it",
        description="Stop the running job with a savepoint, submit the current code of jobs/JOB.py "
        "from it (same parallelism unless -p) and report the new job id. If the current code cannot "
        "restore the state, the new job is cancelled and the savepoint stays intact. Arguments after "
        "`--` go to the job, as for submit.",
        usage="itchflow upgrade JOB [options] [-- job arguments]",
    )
    upgrade_parser.add_argument(
        "job", help="job name in jobs/ (e.g. market_data) or a path to a job .py file"
    )
    upgrade_parser.add_argument(
        "--parallelism", "-p", type=int, help="new parallelism (default: the old job's)"
    )
    upgrade_parser.add_argument(
        "--allow-non-restored-state", action="store_true", help="drop savepoint state with no operator"
    )
    _add_rest_address(upgrade_parser)
    add_stack_options(upgrade_parser)
    upgrade_parser.set_defaults(func=_upgrade)

    jobs = subparsers.add_parser("jobs", help="list Flink jobs with their ids and states (REST)")
    _add_rest_address(jobs)
    jobs.add_argument("--json", action="store_true", help="print JSON")
    add_stack_options(jobs)
    jobs.set_defaults(func=_jobs)


def _submit(args: argparse.Namespace) -> int:
    config = stack_config_from_args(args)
    job_args = _with_stack_addresses(config, args.passthrough)
    if not args.rest_address:
        from itchflow.stack.manager import Stack

        Stack(config).refresh_taskmanager()
    print(f"submitting {args.job} to {rest_url(config, args.rest_address)} ...", file=sys.stderr)
    job_id = submit(
        config,
        args.job,
        job_args,
        args.parallelism,
        args.from_savepoint,
        args.rest_address,
        args.allow_non_restored_state,
    )
    print(job_id)
    print(f"web UI: {rest_url(config, args.rest_address)}/#/job/running/{job_id}/overview", file=sys.stderr)
    return 0


def _with_stack_addresses(config: StackConfig, passthrough: list[str]) -> list[str]:
    job_args = list(passthrough)
    if "--bootstrap-servers" not in job_args:
        job_args = default_job_args(config) + job_args
    return job_args


def _savepoint(args: argparse.Namespace) -> int:
    config = stack_config_from_args(args)
    base = rest_url(config, args.rest_address)
    job = find_running_job(base, args.job)
    action = "stopping it with a savepoint" if args.stop else "taking a savepoint"
    print(f"{job.name} ({job.job_id}): {action} ...", file=sys.stderr)
    take = stop_with_savepoint if args.stop else trigger_savepoint
    print(take(base, job.job_id, args.target_directory))
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    config = stack_config_from_args(args)
    result = upgrade(
        config,
        args.job,
        _with_stack_addresses(config, args.passthrough),
        args.parallelism,
        args.rest_address,
        args.allow_non_restored_state,
        log=lambda message: print(message, file=sys.stderr),
    )
    print(result.new_job_id)
    print(
        f"upgraded {result.old_job_id} -> {result.new_job_id} from {result.savepoint} "
        f"(parallelism {result.parallelism}); web UI: "
        f"{rest_url(config, args.rest_address)}/#/job/running/{result.new_job_id}/overview",
        file=sys.stderr,
    )
    return 0


def _jobs(args: argparse.Namespace) -> int:
    config = stack_config_from_args(args)
    jobs = list_jobs(rest_url(config, args.rest_address))
    if args.json:
        print(json.dumps([_as_dict(job) for job in jobs], indent=2))
        return 0
    if not jobs:
        print("no jobs")
        return 0
    width = max(len(job.name) for job in jobs)
    for job in jobs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.start_time_ms / 1000))
        print(f"{job.job_id}  {job.state:<10}  {job.name:<{width}}  started {started}")
    return 0


def _as_dict(job: JobInfo) -> dict[str, object]:
    return {"job_id": job.job_id, "name": job.name, "state": job.state, "start_time_ms": job.start_time_ms}

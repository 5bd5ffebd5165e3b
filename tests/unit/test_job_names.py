"""Which Flink job a job script runs as: ``itchflow savepoint`` and ``itchflow upgrade`` find the
running job of a script by it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from itchflow.flinkctl import JOBS_DIR, SHARED_MODULES, job_script, script_job_name

SCRIPTS = sorted(
    p.stem for p in JOBS_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem not in SHARED_MODULES
)


@pytest.mark.parametrize("stem", SCRIPTS)
def test_every_job_script_names_the_job_its_module_executes(stem: str) -> None:
    module = importlib.import_module(f"jobs.{stem}")
    assert script_job_name(job_script(stem)) == module.JOB_NAME


def test_a_script_without_a_job_name_runs_under_its_file_name(tmp_path: Path) -> None:
    script = tmp_path / "my_job.py"
    script.write_text('NAME = "other"\n')
    assert script_job_name(script) == "itchflow-my-job"

"""The split the design fixes: a pure core without pyflink, thin entry points that never import
each other, modules small enough to read."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (``import a.b`` -> ``a.b``; ``from a import b`` -> ``a``, ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def entry_points() -> set[str]:
    """Modules of ``jobs/`` that ``flink run -py`` runs: the ones with a ``main``."""
    return {
        f"jobs.{path.stem}"
        for path in (ROOT / "jobs").glob("*.py")
        if any(
            isinstance(node, ast.FunctionDef) and node.name == "main"
            for node in ast.parse(path.read_text()).body
        )
    }


def test_the_core_never_imports_pyflink() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "itchflow").rglob("*.py")
        if any(name == "pyflink" or name.startswith("pyflink.") for name in imported_modules(path))
    ]
    assert offenders == []


def test_no_entry_point_imports_another() -> None:
    jobs = entry_points()
    assert {"jobs.normalize", "jobs.order_book", "jobs.market_data", "jobs.smoke"} <= jobs
    imports = {job: imported_modules(ROOT / (job.replace(".", "/") + ".py")) & jobs for job in jobs}
    assert imports == {job: set() for job in jobs}


def test_every_entry_point_has_a_build_function_taking_env_sources_sinks_config() -> None:
    for job in entry_points():
        tree = ast.parse((ROOT / (job.replace(".", "/") + ".py")).read_text())
        builds = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "build"]
        assert len(builds) == 1, job
        assert [arg.arg for arg in builds[0].args.args] == ["env", "sources", "sinks", "config"], job


def test_no_pipeline_module_is_over_600_lines() -> None:
    sizes = {
        path.name: len(path.read_text().splitlines())
        for path in (ROOT / "itchflow" / "pipeline").glob("*.py")
    }
    assert {name: size for name, size in sizes.items() if size > 600} == {}

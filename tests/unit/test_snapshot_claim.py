"""Restores claim their snapshot (changelog state backend): the savepoint a user took must stay theirs."""

from __future__ import annotations

from pathlib import Path

import yaml

from itchflow.config import PROJECT_ROOT, load_stack_config
from itchflow.flinkctl import snapshot_to_claim
from itchflow.stack.components import flink_site_settings


def stack(home: Path):
    return load_stack_config(env={"ITCHFLOW_HOME": str(home)})


def savepoint(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "_metadata").write_bytes(b"metadata")
    (folder / "state-1").write_bytes(b"operator state")
    return folder


def contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_a_local_savepoint_is_restored_from_a_private_copy_and_stays_intact(tmp_path: Path) -> None:
    config = stack(tmp_path / "home")
    original = savepoint(tmp_path / "savepoints" / "savepoint-abc")
    for given in (str(original), original.as_uri(), "file:" + str(original), str(original / "_metadata")):
        claimed = Path(snapshot_to_claim(config, given))
        assert claimed != original and claimed.parent == config.savepoint_dir / "claimed", given
        assert contents(claimed) == contents(original)
        (claimed / "state-1").unlink()  # what the claiming job may do to it
        assert contents(original) == {"_metadata": b"metadata", "state-1": b"operator state"}


def test_two_restores_of_one_savepoint_get_two_copies(tmp_path: Path) -> None:
    config = stack(tmp_path / "home")
    original = savepoint(tmp_path / "savepoint-abc")
    assert snapshot_to_claim(config, str(original)) != snapshot_to_claim(config, str(original))


def test_retained_checkpoints_remote_uris_and_non_snapshots_are_passed_through(tmp_path: Path) -> None:
    config = stack(tmp_path / "home")
    checkpoint = savepoint(tmp_path / "checkpoints" / "job" / "chk-7")
    for given in (str(checkpoint), "s3://bucket/savepoints/savepoint-1", str(tmp_path / "missing")):
        assert snapshot_to_claim(config, given) == given
    assert not (config.savepoint_dir / "claimed").exists()


def test_the_changelog_has_a_folder_wherever_config_yaml_enables_it(tmp_path: Path) -> None:
    committed = yaml.safe_load((PROJECT_ROOT / "flink-conf" / "config.yaml").read_text())
    assert (
        committed["state.changelog.enabled"] is True and committed["state.changelog.storage"] == "filesystem"
    )
    assert committed["execution.state-recovery.claim-mode"] == "CLAIM"  # see snapshot_to_claim
    config = stack(tmp_path / "home")
    settings = flink_site_settings(config)
    assert settings["state.changelog.dstl.dfs.base-path"] == config.changelog_dir.as_uri()
    assert config.changelog_dir.parent == config.checkpoint_dir
    assert config.job_checkpoint_folders("j1") == (config.checkpoint_dir / "j1", config.changelog_dir / "j1")
    compose = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())["services"]
    for name in ("jobmanager", "taskmanager"):
        properties = yaml.safe_load(compose[name]["environment"]["FLINK_PROPERTIES"])
        assert properties["state.changelog.dstl.dfs.base-path"].startswith("file:///"), name

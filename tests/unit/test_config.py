"""Stack configuration: defaults < environment < flags, validation with readable errors."""

from pathlib import Path

import pytest

from itchflow.config import DEAD_LETTER_TOPIC, RAW_TOPIC, load_stack_config
from itchflow.errors import UserError


def test_defaults_are_the_well_known_ports(tmp_path: Path) -> None:
    config = load_stack_config(env={"ITCHFLOW_HOME": str(tmp_path)})
    assert (config.kafka_port, config.flink_port, config.clickhouse_port, config.redis_port) == (
        9092,
        8081,
        8123,
        6379,
    )
    assert config.home == tmp_path.resolve()
    assert config.bootstrap_servers == "127.0.0.1:9092"
    assert config.flink_rest_url == "http://127.0.0.1:8081"


def test_environment_overrides_defaults_and_flags_override_environment(tmp_path: Path) -> None:
    env = {"ITCHFLOW_HOME": str(tmp_path), "ITCHFLOW_KAFKA_PORT": "19092", "ITCHFLOW_REDIS_PORT": "16379"}
    config = load_stack_config(env=env, overrides={"kafka_port": 29092, "redis_port": None})
    assert config.kafka_port == 29092  # flag wins
    assert config.redis_port == 16379  # env kept when the flag is absent (None)


def test_run_folders_live_under_home(tmp_path: Path) -> None:
    config = load_stack_config(env={"ITCHFLOW_HOME": str(tmp_path)})
    for folder in (
        config.run_dir,
        config.log_dir,
        config.checkpoint_dir,
        config.savepoint_dir,
        config.clickhouse_data_dir,
    ):
        assert folder.is_relative_to(tmp_path.resolve())


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1"])
def test_bad_port_is_a_readable_error(tmp_path: Path, value: str) -> None:
    with pytest.raises(UserError, match="kafka port"):
        load_stack_config(env={"ITCHFLOW_HOME": str(tmp_path), "ITCHFLOW_KAFKA_PORT": value})


@pytest.mark.parametrize("value", ["x", "20", "-1"])
def test_clickhouse_nice_is_0_to_19(tmp_path: Path, value: str) -> None:
    home = {"ITCHFLOW_HOME": str(tmp_path)}
    assert load_stack_config(env=home).clickhouse_nice == 19
    assert load_stack_config(env={**home, "ITCHFLOW_CLICKHOUSE_NICE": "0"}).clickhouse_nice == 0
    with pytest.raises(UserError, match="clickhouse nice must be"):
        load_stack_config(env={**home, "ITCHFLOW_CLICKHOUSE_NICE": value})


def test_two_components_on_one_port_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="both configured on port 8081"):
        load_stack_config(env={"ITCHFLOW_HOME": str(tmp_path), "ITCHFLOW_REDIS_PORT": "8081"})


def test_topics_cover_the_design_and_share_partitioning(tmp_path: Path) -> None:
    config = load_stack_config(env={"ITCHFLOW_HOME": str(tmp_path), "ITCHFLOW_PARTITIONS": "6"})
    topics = {t.name: t for t in config.topics()}
    assert {RAW_TOPIC, "market-data-normalized", "orders", "executions", DEAD_LETTER_TOPIC} <= set(topics)
    assert {t.partitions for t in topics.values()} == {6}
    week_ms = 7 * 24 * 60 * 60 * 1000
    assert all(t.configs["retention.ms"] == str(week_ms) for t in topics.values())
    assert all(t.configs["compression.type"] for t in topics.values())

"""docker-compose.yml cannot run here (no Docker engine): check that it parses and is shaped right."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_names_the_production_services() -> None:
    services = load()["services"]
    assert {"kafka", "jobmanager", "taskmanager", "clickhouse", "redis"} <= set(services)
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_flink_services_mount_flink_conf_and_build_our_image() -> None:
    services = load()["services"]
    for name in ("jobmanager", "taskmanager"):
        service = services[name]
        mounts = [v.split(":")[0:2] for v in service["volumes"]]
        assert ["./flink-conf", "/opt/itchflow/flink-conf"] in mounts, name
        assert service["build"]["dockerfile"] == "docker/Dockerfile"
        assert (ROOT / service["build"]["dockerfile"]).exists()


def test_no_secret_is_written_in_the_compose_file() -> None:
    clickhouse = load()["services"]["clickhouse"]["environment"]
    assert clickhouse["CLICKHOUSE_PASSWORD"].startswith("${")

"""The local stack from nothing to nothing: up, every part through its real client, a job
submitted with `itchflow submit` (RocksDB, 5 s checkpoints), saved and upgraded with `itchflow
savepoint` / `itchflow upgrade` (and an upgrade refused), a no-op second `up`, a clear
error for a taken port, and a `down` that leaves no process and no listening port.

(Named ``test_a_...`` so it runs before the shared session stack of the other modules starts.)
"""

from __future__ import annotations

import dataclasses
import socket
import time
import urllib.parse
from collections import defaultdict
from pathlib import Path

import clickhouse_connect
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer

from itchflow.bench.probes import read_proc_stat
from itchflow.config import TopicSpec
from itchflow.errors import UserError
from itchflow.flinkctl import find_running_job, job_parallelism, list_jobs, rest_get, wait_until_tasks_running
from itchflow.stack import procs
from itchflow.stack.components import COMPONENTS, TASKMANAGERS
from itchflow.stack.manager import Stack
from itchflow.stack.topics import ensure_topics

from .stackutil import PROJECT_ROOT, free_ports, run_cli, stack_config, wait_for_prometheus_value

pytestmark = pytest.mark.integration

KEYS = [f"sym{i}".encode() for i in range(5)]
RECORDS = 200


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory: pytest.TempPathFactory):
    config = stack_config(tmp_path_factory.mktemp("lifecycle-home"))
    stack = Stack(config)
    try:
        yield config, stack
    finally:
        stack.down()


def test_up_brings_every_component_up_healthy(lifecycle) -> None:
    config, stack = lifecycle
    assert stack.up() is True
    statuses = stack.status()
    assert [s.name for s in statuses if not (s.running and s.health.ok)] == []
    # set-up installs Prometheus (.ci/run, `apt-get install prometheus`): the metrics tests need it
    assert "prometheus" in {s.name for s in statuses}, "prometheus is not installed on this machine"


def test_broker_answers_metadata_with_the_topics(lifecycle) -> None:
    config, _ = lifecycle
    consumer = KafkaConsumer(bootstrap_servers=config.bootstrap_servers)
    try:
        topics = consumer.topics()
        for spec in config.topics():
            assert spec.name in topics
            assert len(consumer.partitions_for_topic(spec.name)) == config.partitions
    finally:
        consumer.close()


def test_flink_has_a_registered_taskmanager(lifecycle) -> None:
    config, _ = lifecycle
    overview = rest_get(config.flink_rest_url, "/overview")
    assert overview["taskmanagers"] >= 1
    assert overview["slots-total"] >= 4


def test_clickhouse_http_round_trip_through_clickhouse_connect(lifecycle) -> None:
    config, _ = lifecycle
    client = clickhouse_connect.get_client(host=config.host, port=config.clickhouse_port)
    version = client.query("SELECT version()").result_rows[0][0]
    assert version.split(".")[0].isdigit()
    client.command(
        "CREATE TABLE IF NOT EXISTS lifecycle_rt (id UInt64, sym String, px Int64) ENGINE = MergeTree ORDER BY id"
    )
    rows = [(i, f"S{i % 7}", i * 100 - 5000) for i in range(1000)]
    client.insert("lifecycle_rt", rows, column_names=["id", "sym", "px"])
    back = client.query("SELECT id, sym, px FROM lifecycle_rt ORDER BY id").result_rows
    assert [tuple(r) for r in back] == rows
    assert client.query("SELECT sum(px) FROM lifecycle_rt").result_rows[0][0] == sum(r[2] for r in rows)
    # every thread of the engine, those it started for the queries above too, yields the CPU (but
    # ClickHouse's MemoryWorker threads, two, which raise their own priority to -20 -- at times before
    # they have their name, so they are recognised by that priority)
    record = procs.ProcessRegistry(config.run_dir).get("clickhouse")
    assert record is not None and config.clickhouse_nice == 19
    stats = [read_proc_stat(f"{task}/stat") for task in Path(f"/proc/{record.pid}/task").iterdir()]
    nice = [(name, int(fields[16])) for name, fields in filter(None, stats)]
    others = [(name, value) for name, value in nice if value != 19]
    assert len(nice) > 2 and len(others) <= 2 and all(value == -20 for _, value in others), others


def test_redis_answers_ping(lifecycle) -> None:
    config, _ = lifecycle
    assert redis.Redis(host=config.host, port=config.redis_port).ping() is True


def test_second_up_is_a_no_op(lifecycle) -> None:
    config, stack = lifecycle
    pids_before = {r.name: r.pid for r in stack.registry.all()}
    result = run_cli(config, "stack", "up")
    assert "already up" in result.stderr
    assert {r.name: r.pid for r in stack.registry.all()} == pids_before


def test_taken_port_gives_a_clear_error_and_starts_nothing(lifecycle, tmp_path: Path) -> None:
    config, _ = lifecycle
    other = stack_config(tmp_path / "other-home")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", other.kafka_port))
        squatter.listen()
        with pytest.raises(UserError) as error:
            Stack(other).up()
        result = run_cli(other, "stack", "up", check=False)
    message = str(error.value)
    assert f"port {other.kafka_port} (kafka)" in message and "already in use" in message
    assert "--kafka-port" in message  # says what to do next
    assert result.returncode != 0 and f"port {other.kafka_port} (kafka)" in result.stderr
    assert "Traceback" not in result.stderr
    assert procs.ProcessRegistry(other.run_dir).all() == []
    # a port held by the first stack is refused too, naming the owner's PID
    clash = dataclasses.replace(stack_config(tmp_path / "clash-home"), redis_port=config.redis_port)
    with pytest.raises(UserError, match=rf"port {config.redis_port} \(redis\).*in use by PID"):
        Stack(clash).up()


def test_submitted_job_runs_on_rocksdb_with_5s_checkpoints_and_transforms_records(lifecycle) -> None:
    config, _ = lifecycle
    ensure_topics(config, [TopicSpec("smoke-in", 2), TopicSpec("smoke-out", 2)])
    result = run_cli(
        config, "submit", "smoke", "--", "--input-topic", "smoke-in", "--output-topic", "smoke-out"
    )
    job_id = result.stdout.strip().splitlines()[-1]
    assert len(job_id) == 32
    wait_until_tasks_running(config.flink_rest_url, job_id, timeout_s=120)

    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all")
    sent: dict[bytes, list[bytes]] = defaultdict(list)
    for i in range(RECORDS):
        key = KEYS[i % len(KEYS)]
        payload = f"p{i}".encode()
        producer.send("smoke-in", key=key, value=payload)
        sent[key].append(payload)
    producer.flush()
    producer.close()

    consumer = KafkaConsumer(
        "smoke-out",
        bootstrap_servers=config.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
    )
    received: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + 120
    while len(received) < RECORDS and time.monotonic() < deadline:
        received.extend((m.key, m.value) for m in consumer)
    consumer.close()
    assert len(received) == RECORDS
    # expected output computed from what was sent: the n-th record of a key carries count n
    expected = {
        (key, key + b":" + str(n).encode() + b":" + payload)
        for key, payloads in sent.items()
        for n, payload in enumerate(payloads, start=1)
    }
    assert set(received) == expected

    checkpoint_config = rest_get(config.flink_rest_url, f"/jobs/{job_id}/checkpoints/config")
    assert "RocksDB" in checkpoint_config["state_backend"]
    assert checkpoint_config["interval"] == 5000
    deadline = time.monotonic() + 60
    completed = 0
    while completed < 1 and time.monotonic() < deadline:
        completed = rest_get(config.flink_rest_url, f"/jobs/{job_id}/checkpoints")["counts"]["completed"]
        time.sleep(1)
    assert completed >= 1
    # the changelog state backend (flink-conf/config.yaml) writes where the stack points it
    assert checkpoint_config["state_changelog_enabled"] is True
    assert checkpoint_config["changelog_storage"] == "filesystem"
    changelog = config.job_checkpoint_folders(job_id)[1]
    deadline = time.monotonic() + 30  # the next checkpoint after the records persists their state changes
    while not any(changelog.rglob("*")):
        assert time.monotonic() < deadline, f"no changelog written for the job in {changelog}"
        time.sleep(1)

    listing = run_cli(config, "jobs").stdout
    assert job_id in listing and "RUNNING" in listing

    # Prometheus scrapes every Flink process, and sees the records the job's operator took in
    assert wait_for_prometheus_value(config, 'sum(up{job="flink"})', 1 + TASKMANAGERS) == 1 + TASKMANAGERS
    taken = (
        'sum(flink_taskmanager_job_task_operator_numRecordsIn{job_name="itchflow-smoke", '
        'operator_name="count-per-key"})'
    )
    assert wait_for_prometheus_value(config, taken, RECORDS) == RECORDS
    assert "prometheus" in run_cli(config, "stack", "status").stdout


def smoke_outputs(config, payload: bytes) -> dict[bytes, bytes]:
    """key -> value of the smoke job's outputs of ``payload`` (one per key is expected)."""
    consumer = KafkaConsumer(
        "smoke-out",
        bootstrap_servers=config.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
    )
    found: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 120
    while len(found) < len(KEYS) and time.monotonic() < deadline:
        found.update((m.key, m.value) for m in consumer if m.value.endswith(b":" + payload))
    consumer.close()
    return found


def send_one_per_key(config, payload: bytes) -> None:
    producer = KafkaProducer(bootstrap_servers=config.bootstrap_servers, acks="all")
    for key in KEYS:
        producer.send("smoke-in", key=key, value=payload)
    producer.flush()
    producer.close()


SMOKE_TOPICS = ("--", "--input-topic", "smoke-in", "--output-topic", "smoke-out")


def test_savepoint_then_upgrade_resumes_the_job_from_its_state(lifecycle) -> None:
    """`itchflow savepoint` leaves the job running; `itchflow upgrade` stops it with a savepoint and
    submits the current code from it: a new job, at the old parallelism, whose counts go on."""
    config, _ = lifecycle
    base = config.flink_rest_url
    old = find_running_job(base, "smoke")
    taken = run_cli(config, "savepoint", "smoke").stdout.strip().splitlines()[-1]
    assert (Path(urllib.parse.urlparse(taken).path) / "_metadata").is_file()
    assert rest_get(base, f"/jobs/{old.job_id}")["state"] == "RUNNING"

    result = run_cli(config, "upgrade", "smoke", *SMOKE_TOPICS)
    new_id = result.stdout.strip().splitlines()[-1]
    assert len(new_id) == 32 and new_id != old.job_id
    assert rest_get(base, f"/jobs/{old.job_id}")["state"] == "FINISHED"
    assert rest_get(base, f"/jobs/{new_id}/checkpoints")["latest"]["restored"] is not None
    assert job_parallelism(base, new_id) == job_parallelism(base, old.job_id)
    send_one_per_key(config, b"after-upgrade")
    # each key had RECORDS / len(KEYS) records before: the restored counts go on from there
    after = RECORDS // len(KEYS) + 1
    assert smoke_outputs(config, b"after-upgrade") == {
        key: key + b":%d:after-upgrade" % after for key in KEYS
    }


def test_an_upgrade_whose_code_cannot_restore_the_state_is_refused_and_the_savepoint_kept(
    lifecycle, tmp_path: Path
) -> None:
    """New code whose keyed operator has another uid cannot take the running job's state: the
    upgrade says so, the old job's savepoint stays intact, and the old code resumes from it."""
    config, _ = lifecycle
    base = config.flink_rest_url
    old = find_running_job(base, "smoke")
    renamed = tmp_path / "smoke.py"
    source = (PROJECT_ROOT / "jobs" / "smoke.py").read_text()
    assert '.uid("count-per-key")' in source
    renamed.write_text(source.replace('.uid("count-per-key")', '.uid("count-per-key-renamed")'))

    result = run_cli(config, "upgrade", str(renamed), *SMOKE_TOPICS, check=False)
    assert result.returncode != 0
    assert "was not upgraded" in result.stderr and not result.stdout.strip()
    savepoint = result.stderr.split("its savepoint is intact at ", 1)[1].split(". Resume", 1)[0]
    assert (Path(urllib.parse.urlparse(savepoint).path) / "_metadata").is_file()
    assert rest_get(base, f"/jobs/{old.job_id}")["state"] == "FINISHED"
    assert [j for j in list_jobs(base) if j.state == "RUNNING"] == []

    resumed = run_cli(config, "submit", "smoke", "--from-savepoint", savepoint, *SMOKE_TOPICS)
    job_id = resumed.stdout.strip().splitlines()[-1]
    wait_until_tasks_running(base, job_id, timeout_s=120)
    send_one_per_key(config, b"after-refusal")
    after = RECORDS // len(KEYS) + 2  # one record per key since the upgrade
    assert smoke_outputs(config, b"after-refusal") == {
        key: key + b":%d:after-refusal" % after for key in KEYS
    }


def test_down_leaves_no_process_and_no_listening_port(lifecycle) -> None:
    config, stack = lifecycle
    records = stack.registry.all()
    assert sorted(record.name for record in records) == sorted(c.name for c in COMPONENTS)
    result = run_cli(config, "stack", "down")
    assert "stopped" in result.stdout
    for record in records:
        assert not procs.is_alive(record), record.name
        assert procs.group_members(record.pid) == [], record.name
    for name, port in config.ports().items():
        assert not procs.port_in_use(config.host, port), f"{name} port {port} still listening"
    assert stack.registry.all() == []
    assert "nothing was running" in run_cli(config, "stack", "down").stdout


def test_free_ports_helper_gives_distinct_ports() -> None:
    ports = free_ports(10)
    assert len(set(ports)) == 10

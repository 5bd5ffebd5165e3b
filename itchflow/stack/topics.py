"""Create the stack's Kafka topics (idempotent)."""

from __future__ import annotations

from collections.abc import Iterable

from itchflow.config import StackConfig, TopicSpec
from itchflow.errors import UserError


def ensure_topics(config: StackConfig, topics: Iterable[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    try:
        admin = KafkaAdminClient(bootstrap_servers=config.bootstrap_servers, request_timeout_ms=10000)
    except (KafkaError, OSError) as exc:
        raise UserError(f"broker at {config.bootstrap_servers} unreachable: {exc}. Is the stack up?") from exc
    try:
        existing = set(admin.list_topics())
        wanted = [t for t in topics if t.name not in existing]
        created = []
        for topic in wanted:
            try:
                admin.create_topics(
                    [NewTopic(topic.name, topic.partitions, 1, topic_configs=dict(topic.configs))]
                )
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
        return created
    finally:
        admin.close()

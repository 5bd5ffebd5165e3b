from itchflow.pipeline.latency import BOUNDS_MS, bucket_names, bucket_of


def test_bucket_bounds_are_inclusive_and_the_last_bucket_takes_the_rest() -> None:
    names = bucket_names()
    assert len(names) == len(BOUNDS_MS) + 1
    assert names[bucket_of(-3)] == names[bucket_of(0)] == names[bucket_of(1)] == "latencyLe1ms"
    assert names[bucket_of(1.01)] == "latencyLe2ms"
    assert names[bucket_of(50)] == "latencyLe50ms"
    assert names[bucket_of(50.5)] == "latencyLe100ms"
    assert names[bucket_of(5000)] == "latencyLe5000ms"
    assert names[bucket_of(5000.1)] == names[bucket_of(10**9)] == "latencyOver5000ms"

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


def test_bucket_quantile_is_the_bound_of_the_bucket_holding_the_quantile() -> None:
    from itchflow.pipeline.latency import bucket_quantile

    counts = [0.0] * (len(BOUNDS_MS) + 1)
    # 100 records: 50 at <= 5 ms, 40 at <= 20 ms, 9 at <= 200 ms, 1 over 5 s
    counts[BOUNDS_MS.index(5)] = 50
    counts[BOUNDS_MS.index(20)] = 40
    counts[BOUNDS_MS.index(200)] = 9
    counts[-1] = 1
    assert bucket_quantile(counts, 0.5) == 5  # the 50th record is the last at <= 5 ms
    assert bucket_quantile(counts, 0.51) == 20
    assert bucket_quantile(counts, 0.9) == 20
    assert bucket_quantile(counts, 0.99) == 200
    assert bucket_quantile(counts, 1.0) == float("inf")
    assert bucket_quantile([0.0] * len(counts), 0.5) is None

"""``itchflow bench``: end-to-end throughput, latency, checkpoints and memory of the pipeline, checked
for correctness, on the local stack.

    itchflow bench --messages 10000000 --symbols 1000 --execution-mode thread --parallelism 2 --cpp

One run:

1. **Feed and answer** -- a synthetic book-consistent feed (``itchflow synth``) and its offline books
   (``itchflow book --json``), both cached under ``<stack home>/bench-cache/`` by their parameters.
2. **Fresh pipeline** -- the local stack comes up if needed; jobs an earlier bench run left are
   cancelled (anyone else's are only reported: they share the CPU); the run gets its own topics,
   consumer groups and venue tags (``BENCH<time>``), and a fresh pipeline (``--pipeline``: the
   ``market_data`` job, or the ``normalize`` and ``order_book`` jobs; ``--execution-mode``,
   ``--parallelism``); a warm-up replay under its own venue, in few large bundles (at least 20,000
   messages / 100 ms: the phases after it share its topics, see ``WARMUP_BATCH_SIZE``).
3. **Latency** -- the first ``--latency-messages`` of the feed, paced at ``--latency-rate`` messages
   per second under another venue, while a child process reads the top-of-book Redis streams of the
   phase's busiest symbols (``XREAD``, ``--latency-streams``, default 25). Latency of an entry = its arrival minus the time the replay sent the batch carrying
   its ``seq`` (the envelope's ``produced_at_ns``; stream entries do not carry it). It runs before
   the throughput phase: the local broker's cost per request grows with the records a partition
   holds, and the run's topics are nearly empty then. The book job's ``producedToBook`` histogram
   over the phase splits it: batch sent -> books applied (bucket bounds); and by time: the entries
   that arrived within 1 s after a checkpoint trigger of the phase, and the others. When the job
   writes bars: the bar publish delay over the phase (its Redis sink's ``barPublishDelay``
   histogram, bucket bounds), from the operator finding the watermark past bars' window ends to Redis
   acknowledging those bars, one sample per firing of a shard key. The phase's CPU
   is printed with it: the stack's processes, the rest of the machine, and the steal (CPU time the
   hypervisor gave to other guests: on a shared host the one difference between two runs of the same
   code that no process shows).
4. **Throughput** -- the whole feed is replayed at full speed (or ``--speed``). ``msgs_per_s`` is the
   feed's messages divided by the time from the first message handed to the producer to the moment
   every symbol's last sequence number is seen in ClickHouse ``book_status`` (polled every 0.2 s).
   Per stage: the replay's own rate, and for the normalize and order-book vertices the window in
   which their ``numRecordsIn`` moved (Flink REST, sampled every second), with the share of it
   they were busy or back-pressured (``accumulateBusyTimeMs``, ``accumulateBackPressuredTimeMs``).
   Checkpoint durations are those triggered during this phase.
5. **Correctness** -- every symbol's final book in ClickHouse and Redis must equal the offline one
   (depth, top of book, resting orders, unknown refs, printable trades, last seq); otherwise the run
   prints FAIL and exits 1.
6. **Clean-up** (unless ``--keep``; then the next run cancels the jobs and drops the topics) -- jobs
   cancelled, topics deleted, the run's ClickHouse rows and Redis keys removed. ``--cpp`` then times C++ parsers (``itch-book``, ``itchcpp``) on the same file.

Peak memory is the resident memory of each stack component's process group, sampled from ``/proc``
(the TaskManager's includes its Python workers in process mode).
"""

from __future__ import annotations

import argparse
import json
import sys

PIPELINES = ("market-data", "split")
"""What a run submits (``--pipeline``, the first is the default): ``market-data`` is one job that
normalizes and keeps the books (``jobs/market_data.py``); ``split`` the normalize, order_book and analytics jobs."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from itchflow.stack.cli import add_stack_options

    parser = subparsers.add_parser(
        "bench",
        help="end-to-end benchmark of the pipeline on the local stack (msgs/s, latency, checkpoints, memory)",
        description=__doc__.split("\n\n")[0],
    )
    feed = parser.add_argument_group("feed (cached under <stack home>/bench-cache/)")
    feed.add_argument(
        "--messages", type=int, default=1_000_000, help="messages in the feed (default 1,000,000)"
    )
    feed.add_argument("--symbols", type=int, default=1000, help="symbols in the feed (default 1000)")
    feed.add_argument("--seed", type=int, default=1, help="generator seed (default 1)")
    pipeline = parser.add_argument_group("pipeline")
    pipeline.add_argument(
        "--execution-mode",
        choices=("process", "thread"),
        help="PyFlink mode (default: python.execution-mode of flink-conf/config.yaml)",
    )
    pipeline.add_argument(
        "--pipeline",
        choices=PIPELINES,
        default=PIPELINES[0],
        help="market-data: one job normalizing and keeping the books (jobs/market_data.py, default); "
        "split: the normalize, order_book and analytics jobs",
    )
    pipeline.add_argument("--parallelism", type=int, default=2, help="parallelism of the jobs (default 2)")
    pipeline.add_argument(
        "--depth", type=int, default=10, help="L2 levels the order-book job keeps (default 10)"
    )
    pipeline.add_argument(
        "--job-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to every job of the run, once per flag, e.g. --job-arg=--clickhouse-linger-ms=5000 "
        "or --job-arg=--kafka-properties=FILE (see `.venv/bin/python -m jobs.market_data --help`)",
    )
    replay = parser.add_argument_group("replay")
    replay.add_argument(
        "--speed", type=float, help="pace the throughput replay by feed time, X times real time"
    )
    replay.add_argument(
        "--batch-size",
        type=int,
        help="messages per raw batch at most (default: 20,000 for the full-speed throughput replay, "
        "1,000 for paced replays: --speed and the latency phase)",
    )
    replay.add_argument(
        "--linger-ms",
        type=float,
        help="close a raw batch this late (default: 100 at full speed, 10 paced)",
    )
    replay.add_argument(
        "--latency-rate",
        type=float,
        default=20_000,
        help="messages/s of the paced latency replay (default 20,000; 0 skips it)",
    )
    replay.add_argument(
        "--latency-messages",
        type=int,
        default=200_000,
        help="messages of the latency replay (default 200,000)",
    )
    replay.add_argument(
        "--latency-streams",
        type=int,
        help="top-of-book streams (of the phase's busiest symbols) the latency reader follows "
        "(default 25: each costs Valkey in every XREAD, on the machine under test)",
    )
    replay.add_argument(
        "--warmup-messages",
        type=int,
        default=1_000_000,
        help="messages of the warm-up replay before measuring (default 1,000,000, at most the feed: JIT, "
        "workers, connections; after 100,000 the paced latency was still ~2x its warmed value)",
    )
    replay.add_argument(
        "--timeout", type=float, help="seconds to wait for the books (default 300 + 1 per 10k msgs)"
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    output.add_argument(
        "--cpp", action="store_true", help="also time C++ parsers (itch-book, itchcpp) on the file"
    )
    output.add_argument(
        "--keep", action="store_true", help="leave the run's jobs, topics and results in place"
    )
    add_stack_options(parser)
    parser.set_defaults(func=run_command)


def run_command(args: argparse.Namespace) -> int:
    from itchflow.bench.report import render
    from itchflow.bench.runner import BenchOptions, BenchRun
    from itchflow.stack.cli import stack_config_from_args

    options = BenchOptions(
        messages=args.messages,
        symbols=args.symbols,
        seed=args.seed,
        speed=args.speed,
        parallelism=args.parallelism,
        pipeline=args.pipeline,
        execution_mode=args.execution_mode,
        batch_size=args.batch_size,
        linger_ms=args.linger_ms,
        depth=args.depth,
        job_args=tuple(args.job_arg),
        latency_rate=args.latency_rate,
        latency_messages=args.latency_messages,
        **({"latency_streams": args.latency_streams} if args.latency_streams is not None else {}),
        warmup_messages=args.warmup_messages,
        timeout_s=args.timeout,
        cpp=args.cpp,
        keep=args.keep,
    )
    result = BenchRun(stack_config_from_args(args), options, log=_log).run()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(render(result))
    if not result["correct"]:
        print(
            f"FAIL: the pipeline's books differ from the offline reference ({result['mismatch_count']:,} differences)",
            file=sys.stderr,
        )
        return 1
    return 0


def _log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr)

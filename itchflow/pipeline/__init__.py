"""Pure cores of the Flink jobs (no pyflink import): each job loads state, calls one of these, saves, emits.

* :mod:`itchflow.pipeline.normalize_stage` -- ``market-data-raw`` record -> normalized record
* :mod:`itchflow.pipeline.book_stage` -- one symbol's run of events -> its order book -> ClickHouse rows
  and Redis commands (:class:`BookStage`)
* :mod:`itchflow.pipeline.partition_books` -- a normalized bundle -> every book of its partition
  (:class:`PartitionBooks`), kept live between records and checked against the state token
  (:class:`BookCache`)
"""

from itchflow.pipeline.book_stage import BookStage, BookStageConfig, StageOutput
from itchflow.pipeline.partition_books import BookCache, PartitionBooks

__all__ = ["BookCache", "BookStage", "BookStageConfig", "PartitionBooks", "StageOutput"]

"""Pure cores of the Flink jobs (no pyflink import): each job loads state, calls one of these, saves, emits.

* :mod:`itchflow.pipeline.normalize_stage` -- ``market-data-raw`` record -> normalized batch
* :mod:`itchflow.pipeline.book_stage` -- normalized batch -> the symbol's order book -> ClickHouse rows
  and Redis commands (:class:`BookStage`)
"""

from itchflow.pipeline.book_stage import BookStage, BookStageConfig, StageCache, StageOutput

__all__ = ["BookStage", "BookStageConfig", "StageCache", "StageOutput"]

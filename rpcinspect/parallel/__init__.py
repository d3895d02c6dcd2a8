"""Parallel analysis (``--jobs``): one worker process per shard of address pairs, one merge.

:mod:`~rpcinspect.parallel.worker` runs the whole pipeline (:func:`rpcinspect.engine.analyze_shard`)
on its shard and streams serialised records with their order keys; :mod:`~rpcinspect.parallel.merge`
merges the workers' streams into the order one process would write, and reconciles what is per
run rather than per shard (endpoint records, the anomaly budget, the summary).
"""

from rpcinspect.parallel.merge import ParallelRun, auto_jobs

__all__ = ["ParallelRun", "auto_jobs"]

"""Modified Kneser-Ney estimated on a Ray cluster, byte-identical to the single-process build.

>>> from speechdecode.lm.distributed import build
>>> report = build(["shard1.txt", "shard2.txt"], "G.arpa", 3)  # doctest: +SKIP

See :func:`build` (:mod:`.driver`: the stages, as Ray tasks) and :mod:`.partition` (the
computation of one partition).
"""

from speechdecode.lm.distributed.driver import BuildReport, UnreadableShardWarning, build

__all__ = ["BuildReport", "UnreadableShardWarning", "build"]

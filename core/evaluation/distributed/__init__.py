"""Evaluation on a Ray cluster: the same rows, scores and metrics as the local engine, spread over many machines.

* :mod:`.cluster` joins a cluster (or starts a private local instance), keeps token authentication on, and sizes
  the actor pools from the cluster's resources.
* :mod:`.stages` holds what runs on the workers: reading/decoding as Ray tasks and one actor pool per detector.
* :mod:`.shards` writes every finished batch to disk on the driver, so an interrupted run resumes.
* :mod:`.engine` is the driver: :func:`~core.evaluation.distributed.engine.evaluate_ray`.

Ray (``pip install -r requirements-scale.txt``) is imported only when a run starts: ``import core`` and the local
engine never load it.
"""

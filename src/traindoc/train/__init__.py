"""The child side of a run (imports torch): a small step protocol, an optimisation object, a plain
``fit()`` loop with callbacks, and the session that writes the run protocol.

- :mod:`~traindoc.train.session`: RankContext, Session (protocol writer, one sync per log window),
  failures, the redacting output pump;
- :mod:`~traindoc.train.step`: TrainStep/EvalStep, StepOutput, ``supervised()``, batches to the device;
- :mod:`~traindoc.train.optim`: Optimization (AMP, scaler, accumulation, clipping, schedule);
- :mod:`~traindoc.train.data`: deterministic epoch order, device-resident data, DataLoader;
- :mod:`~traindoc.train.loop`: ``fit()`` and the Checkpoint and TimeBudget callbacks;
- :mod:`~traindoc.train.evaluate`: the Evaluate callback (true metrics only, reduced over ranks);
- :mod:`~traindoc.train.byo`: your own training script in place of ``fit()``;
- ``python -m traindoc.train`` (alias ``traindoc.worker``): the process the runner starts.
"""

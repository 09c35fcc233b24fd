"""Measurement harness for speed and memory (used by ``tools/benchmark.py`` and ``tools/gpu_check.py``).

* :mod:`spyolo.bench.probe`: one training or inference configuration on random tensors
  (``python -m spyolo.bench.probe``), :class:`~spyolo.bench.probe.ProbeSession` to measure
  several ``T`` on one built (and compiled) model;
* :mod:`spyolo.bench.suite`: a grid of configurations, a fresh process each on CPU;
* :mod:`spyolo.bench.ratio`: FPTT timestep vs ANN-twin step, side by side on CPU;
* :mod:`spyolo.bench.loader`: the training data loader's images/s;
* :mod:`spyolo.bench.flops`: FLOPs of one forward timestep;
* :mod:`spyolo.bench.syncs`: host-sync detection on CUDA;
* :mod:`spyolo.bench.machine`, :mod:`spyolo.bench.report`: machine description, JSON and
  markdown reports.
"""

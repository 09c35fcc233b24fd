"""spyolo's benchmarks: measurement code kept apart from the product (it imports spyolo, never
the reverse). Run the scripts as modules from the repository root:

    python -m benchmarks.benchmark ...      speed and memory grids, the CPU ratio, the loader, profiles
    python -m benchmarks.gpu_check ...      the GPU check: every part in one command, within a time budget
    python -m benchmarks.bench_quality ...  the learning-quality benchmark (FPTT vs BPTT vs ANN twin)

Modules:

* :mod:`benchmarks.probe`: one training or inference configuration on random tensors
  (``python -m benchmarks.probe``), :class:`~benchmarks.probe.ProbeSession` to measure
  several ``T`` on one built (and compiled) model; FLOPs of one forward timestep and host-sync
  detection on CUDA;
* :mod:`benchmarks.suite`: a grid of configurations, a fresh process each on CPU;
* :mod:`benchmarks.ratio`: FPTT timestep vs ANN-twin step, side by side on CPU;
* :mod:`benchmarks.loader`: the training data loader's images/s;
* :mod:`benchmarks.rss`: the peak RSS over a window of work on the CPU;
* :mod:`benchmarks.profile`: torch.profiler summaries by operator category;
* :mod:`benchmarks.machine`, :mod:`benchmarks.report`: machine description, JSON and markdown reports;
* :mod:`benchmarks.runner`: the one way the benchmarks start a command (the quality benchmark's
  training and evaluation runs, the CPU grid's probes, the GPU check's parts);
* :mod:`benchmarks.gradient_scale`: the relative gradient per layer at initialisation, per
  neuron recipe (docs/learning_quality.md);
* figures and side measurements named in the docs: :mod:`benchmarks.quality_chart`,
  :mod:`benchmarks.detection_figure`, :mod:`benchmarks.event_figure`, :mod:`benchmarks.onnx_speed`,
  :mod:`benchmarks.darknet_reference`.

The quality benchmark's named runs live in ``configs/quality_runs/*.yaml`` (config overlays).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # as the spyolo commands do: no network

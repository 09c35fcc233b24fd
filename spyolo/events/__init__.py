"""Event cameras: readers of Gen1 ``.dat``/``_bbox.npy`` and Prophesee EVT 2.0/3.0 ``.raw`` files,
event frames over timesteps, the event detection dataset, the Gen1 protocol and the synthetic
event generator.

Modules (imported where used; ``import spyolo.events`` itself loads nothing heavy):
:mod:`~spyolo.events.arrays` (the event array), :mod:`~spyolo.events.header`,
:mod:`~spyolo.events.dat`, :mod:`~spyolo.events.raw`, :mod:`~spyolo.events.boxes`,
:mod:`~spyolo.events.recording`, :mod:`~spyolo.events.frames`, :mod:`~spyolo.events.sets`,
:mod:`~spyolo.events.protocol`, :mod:`~spyolo.events.dataset`, :mod:`~spyolo.events.synthetic`
(the dataset of a full config: :mod:`spyolo.datasets.build`).
"""

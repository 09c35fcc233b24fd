"""Measurement harness: training/inference probes on synthetic tensors (speed and peak memory)."""

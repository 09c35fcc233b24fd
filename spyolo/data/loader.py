"""Batching and data loaders for detection datasets.

Determinism: the loader shuffles with a ``torch.Generator`` seeded by ``seed``.
Every worker process re-seeds Python's ``random``, numpy's global generator and the
dataset (``dataset.set_seed``, which re-seeds its transform) from
``torch.initial_seed()`` of that worker, i.e. from the loader's generator, the
worker id and the distributed rank. Without persistent workers the worker seeds
change every epoch (a new base seed is drawn per epoch); with persistent workers
the workers are seeded once and their streams continue across epochs. With
``workers=0`` the dataset is re-seeded once, in the calling process, when the
loader is built. So for a fixed seed, batch size, worker count and rank, the batches
(order and augmentations) are reproducible; changing the number of workers changes
the augmentations (not the order).

A :class:`~spyolo.errors.SpyoloError` raised while a worker process loads a sample (an image that
changed after the start-up check, say) reaches the caller as itself, with its own one-line
message: PyTorch re-raises it in the main process with the worker's whole traceback folded into
the message, which :class:`DetectionLoader` takes off again.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import ConcatDataset, DataLoader, Dataset, DistributedSampler, Subset

from spyolo.errors import SpyoloError

Sample = tuple[torch.Tensor, torch.Tensor, dict[str, Any]]


def worker_error(exc: SpyoloError) -> SpyoloError:
    """``exc`` as raised in the worker: PyTorch re-raises a worker's exception as
    ``type(exc)("Caught ... in DataLoader worker process N.\nOriginal Traceback ...\n<module>.<Type>: <message>")``;
    the message is what follows the last ``<module>.<Type>: `` of that text. Other exceptions are returned
    unchanged."""
    text = str(exc)
    marker = f"\n{type(exc).__module__}.{type(exc).__qualname__}: "
    if not text.startswith("Caught ") or "Original Traceback" not in text or marker not in text:
        return exc
    message = text.rsplit(marker, 1)[1].strip()
    try:
        return type(exc)(message)
    except Exception:  # a type that takes other arguments: keep PyTorch's
        return exc


class DetectionLoader(DataLoader):  # type: ignore[type-arg]
    """A ``DataLoader`` whose workers' spyolo errors reach the caller with their own message
    (:func:`worker_error`)."""

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except SpyoloError as exc:
                clean = worker_error(exc)
                if clean is exc:
                    raise
                raise clean from None
            yield batch


def collate_detection(batch: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """Stack a list of ``(image (3,H,W), target (N,5), meta)`` samples.

    Returns:
        ``images`` float32 (B, 3, H, W); ``targets`` float32 (M, 6) with rows
        ``[batch_index, class, cx, cy, w, h]`` (M = total number of boxes);
        ``metas``: the list of meta dicts, in batch order.
    """
    if not batch:
        raise ValueError("collate_detection got an empty batch")
    shapes = {tuple(sample[0].shape) for sample in batch}
    if len(shapes) != 1:
        raise ValueError(
            f"collate_detection needs images of one size, got {sorted(shapes)} "
            "(use a resizing transform, e.g. build_eval_transform)"
        )
    images = torch.stack([sample[0] for sample in batch]).float()
    rows = []
    for i, (_, target, _) in enumerate(batch):
        target = target.float().reshape(-1, 5)
        rows.append(torch.cat([torch.full((target.shape[0], 1), float(i)), target], dim=1))
    targets = torch.cat(rows, dim=0)
    return images, targets, [sample[2] for sample in batch]


def seed_dataset(dataset: Dataset, seed: int) -> None:  # type: ignore[type-arg]
    """Call ``set_seed`` on ``dataset``, looking through ``Subset`` and ``ConcatDataset``."""
    if hasattr(dataset, "set_seed"):
        dataset.set_seed(seed)
    elif isinstance(dataset, Subset):
        seed_dataset(dataset.dataset, seed)
    elif isinstance(dataset, ConcatDataset):
        children = np.random.SeedSequence(seed).spawn(len(dataset.datasets))
        for child_dataset, child in zip(dataset.datasets, children):
            seed_dataset(child_dataset, int(child.generate_state(1)[0]))


def _derived_seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(1)[0])


def _worker_init(worker_id: int, rank: int) -> None:
    """Seed ``random``, numpy and the dataset of one worker (see module docstring)."""
    seed = _derived_seed(torch.initial_seed(), rank)
    random.seed(seed)
    np.random.seed(seed)
    info = torch.utils.data.get_worker_info()
    if info is not None:
        seed_dataset(info.dataset, seed)


def build_dataloader(
    dataset: Dataset,  # type: ignore[type-arg]
    batch_size: int,
    shuffle: bool,
    workers: int,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    distributed: bool = False,
    persistent_workers: bool | None = None,
    prefetch_factor: int | None = None,
) -> DataLoader:  # type: ignore[type-arg]
    """A ``DataLoader`` (:class:`DetectionLoader`) for detection samples, batched with :func:`collate_detection`.

    Args:
        dataset: e.g. a :class:`spyolo.data.dataset.DetectionDataset`.
        batch_size: samples per batch (per process when distributed).
        shuffle: shuffle the order every epoch.
        workers: worker processes (0: load in the calling process).
        seed: seed of the order and of the augmentations (see module docstring).
        drop_last: drop the last incomplete batch.
        pin_memory: ``None`` means ``torch.cuda.is_available()``.
        distributed: use a ``DistributedSampler`` (the process group must be
            initialised; call ``loader.sampler.set_epoch(epoch)`` every epoch).
        persistent_workers: keep workers alive across epochs; ``None`` means
            ``workers > 0``.
        prefetch_factor: batches prefetched per worker; ``None`` means 4 when
            ``workers > 0``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if workers < 0:
        raise ValueError(f"workers must be >= 0, got {workers}")
    if pin_memory is None:
        pin_memory = torch.cuda.is_available()
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0

    generator = torch.Generator()
    generator.manual_seed(seed)
    sampler = None
    if distributed:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)

    extra: dict[str, Any] = {}
    if workers > 0:
        extra["persistent_workers"] = True if persistent_workers is None else persistent_workers
        extra["prefetch_factor"] = 4 if prefetch_factor is None else prefetch_factor
        extra["worker_init_fn"] = functools.partial(_worker_init, rank=rank)
    else:
        seed_dataset(dataset, _derived_seed(seed, rank))

    return DetectionLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle if sampler is None else False,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate_detection,
        pin_memory=pin_memory,
        drop_last=drop_last,
        generator=generator,
        **extra,
    )

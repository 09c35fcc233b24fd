"""Per-epoch seeds: data order, augmentation and neuron-state draws as functions of (seed, epoch).

Resuming a run at epoch ``e`` must give the same batches as an uninterrupted run, whatever
happened before, so nothing random carries over from one epoch to the next: every stream is
re-seeded at the start of each epoch from ``train.seed``, the epoch and the process's rank.

The seeds are affine in (seed, epoch, rank): ``RUN * seed + STREAM * epoch + rank``. ``RUN``
(the prime 1,000,003) keeps the seeds of two runs with different ``train.seed`` apart for any
realistic number of epochs; each stream gets its own epoch multiplier (1, 101 and 7,919, the
1st, 26th and 1,000th primes) so that the loader, the in-process augmentation and the
membrane draws of one epoch never share a seed. (These values fix the reported benchmark
runs; changing them changes every training run.)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EpochSeeds", "epoch_seeds"]

RUN = 1_000_003
ORDER = 1
AUGMENT = 101
STATES = 7_919
TORCH_RANK = 7


@dataclass(frozen=True)
class EpochSeeds:
    """Seeds of one epoch.

    Attributes:
        order: the data loader's shuffling generator (and its worker seeds).
        augment: the dataset's augmentation stream when loading in-process (``workers=0``).
        states: the generator of the uniform initial membranes (``model.state_init=uniform``).
        torch: torch's global generator (dropout and anything else drawn in the training step).
    """

    order: int
    augment: int
    states: int
    torch: int


def epoch_seeds(seed: int, epoch: int, rank: int = 0) -> EpochSeeds:
    """The seeds of epoch ``epoch`` (0-based) of a run with ``train.seed = seed`` on ``rank``."""
    base = RUN * seed
    return EpochSeeds(
        order=base + ORDER * epoch,
        augment=base + AUGMENT * epoch + rank,
        states=base + STATES * epoch + rank,
        torch=base + ORDER * epoch + TORCH_RANK * rank,
    )

"""Energy estimate from operation counts, with stated per-operation costs.

The default costs are those of 32-bit floating-point arithmetic in a 45 nm CMOS process
given by M. Horowitz, "Computing's energy problem (and what we can do about it)", IEEE
International Solid-State Circuits Conference (ISSCC) 2014, pp. 10-14: a 32-bit float add
costs 0.9 pJ and a 32-bit float multiply 3.7 pJ, so an accumulate (AC, one add) costs
0.9 pJ and a multiply-accumulate (MAC, multiply + add) 4.6 pJ.

Elementwise work outside the convolutions (bias additions, the neurons' membrane update,
the ANN's activation; :mod:`spyolo.stats.sops`) is priced with the same two figures: an
addition 0.9 pJ, a multiplication 3.7 pJ.

This is the usual first-order comparison in the spiking-network literature: it counts
arithmetic only (no memory access, which often dominates in practice, no data movement)
and assumes the same number format for both networks.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["EnergyCosts", "HOROWITZ_45NM"]


@dataclass(frozen=True)
class EnergyCosts:
    """Energy per operation, in picojoules.

    Attributes:
        ac_pj: one accumulate (addition).
        mac_pj: one multiply-accumulate.
        add_pj: one elementwise addition (or comparison).
        mul_pj: one elementwise multiplication.
        source: where the figures come from (printed with every report).
    """

    ac_pj: float = 0.9
    mac_pj: float = 4.6
    add_pj: float = 0.9
    mul_pj: float = 3.7
    source: str = (
        "45 nm CMOS, 32-bit float: add 0.9 pJ, multiply 3.7 pJ (MAC 4.6 pJ); M. Horowitz, "
        "'Computing's energy problem (and what we can do about it)', ISSCC 2014"
    )

    def __post_init__(self) -> None:
        if min(self.ac_pj, self.mac_pj, self.add_pj, self.mul_pj) < 0:
            raise ValueError(
                f"energy costs must be >= 0, got ac_pj={self.ac_pj}, mac_pj={self.mac_pj}, "
                f"add_pj={self.add_pj}, mul_pj={self.mul_pj}"
            )

    def energy_j(self, acs: float, macs: float, adds: float = 0.0, muls: float = 0.0) -> float:
        """Energy in joules of ``acs`` accumulates, ``macs`` multiply-accumulates and the
        elementwise ``adds`` and ``muls``."""
        return (acs * self.ac_pj + macs * self.mac_pj + adds * self.add_pj + muls * self.mul_pj) * 1e-12


HOROWITZ_45NM = EnergyCosts()
"""The default costs: 0.9 pJ per AC or addition, 4.6 pJ per MAC, 3.7 pJ per multiplication
(Horowitz, ISSCC 2014, 45 nm)."""

"""The design report a statistician reads before the lists are sealed: the protocol's
randomization design beside the alternatives, with exact predictability and imbalance
figures for a stratum's list (``domain.design_metrics``) and a simulation of the trial-wide
imbalance over the protocol's expected stratum sizes. Runs on a protocol file (before
``init``) or on a trial's stored protocol; it names no arm and opens no list."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from trialkit.domain.design_metrics import DesignMetrics, design_metrics, trial_imbalance
from trialkit.domain.designs import (
    BIG_STICK,
    BLOCK_URN,
    COMPLETE,
    EFRON,
    MAXIMAL,
    PERMUTED_BLOCKS,
    Design,
)
from trialkit.domain.errors import InvalidInput
from trialkit.domain.procedures import RandomSource, SystemRandomSource
from trialkit.domain.protocol import Protocol
from trialkit.domain.strata import all_strata

SIMULATION_RUNS = 2000
EFRON_P = Fraction(2, 3)  # Efron's own suggestion


@dataclass(frozen=True)
class DesignRow:
    """One design's exact figures and its simulated trial-wide final imbalance."""

    metrics: DesignMetrics
    protocol: bool  # the protocol's own design
    trial_wide: dict[int, float]


@dataclass(frozen=True)
class DesignReport:
    trial: str
    n: int  # the list length the exact figures are for (one stratum)
    stratum_sizes: tuple[int, ...]  # expected participants per stratum (trial-wide simulation)
    rows: tuple[DesignRow, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "trial": self.trial,
            "n": self.n,
            "stratum_sizes": list(self.stratum_sizes),
            "designs": [
                r.metrics.as_dict()
                | {"protocol": r.protocol,
                   "trial_wide_final_imbalance": {str(k): v for k, v in r.trial_wide.items()}}
                for r in self.rows
            ],
        }

    def text(self) -> str:
        """The figures as ``trialkit design report`` prints them (and the TUI shows them
        before sealing): one line per design, the protocol's marked with a star."""
        lines = [
            f"Exact figures for one stratum's list of {self.n} allocations (1:1); guesses by "
            "someone who knows every past allocation and guesses the arm that is behind:",
            "",
            f"  {'design':<34} {'correct guess':>13} {'forced':>7} {'E[max imbalance]':>17} "
            f"{'P(final = 0)':>12}",
        ]
        for row in self.rows:
            m = row.metrics
            mark = "* " if row.protocol else "  "
            lines.append(
                f"{mark}{m.design.label():<34} {round(m.correct_guess, 6):>13.3f} "
                f"{round(m.forced, 6):>7.3f} {round(m.expected_max_imbalance, 6):>17.2f} "
                f"{round(m.final_imbalance.get(0, 0.0), 6):>12.3f}"
            )
        lines += [
            "",
            "* the protocol's design. Correct guess 0.5 is no better than chance; forced",
            "  allocations are known in advance to anyone who has seen the earlier ones.",
        ]
        return "\n".join(lines)


def expected_stratum_sizes(protocol: Protocol) -> tuple[int, ...]:
    """Participants expected per stratum: each site's target split evenly over its strata
    (the protocol gives no proportions for the stratification levels), in stratum order."""
    strata = all_strata(protocol)
    if not protocol.allocation.stratify_by_site:
        total = sum(s.target for s in protocol.sites)
        return tuple(_share(total, len(strata), i) for i in range(len(strata)))
    sizes: list[int] = []
    for site in protocol.sites:
        mine = [st for st in strata if st.site == site.code]
        sizes += [_share(site.target, len(mine), i) for i in range(len(mine))]
    return tuple(sizes)


def _share(total: int, parts: int, i: int) -> int:
    return total // parts + (1 if i < total % parts else 0)


def alternatives(design: Design) -> list[Design]:
    """The designs a statistician would weigh against ``design`` (1:1): the maximum
    tolerated imbalance matched to it (half the largest block for permuted blocks)."""
    if design.procedure == PERMUTED_BLOCKS:
        limit = max(design.block_sizes) // 2
    else:
        limit = design.mti or design.urn_lambda or 3
    candidates = [
        Design(PERMUTED_BLOCKS, block_sizes=(4, 6)),
        Design(BIG_STICK, mti=limit),
        Design(BLOCK_URN, urn_lambda=limit),
        Design(MAXIMAL, mti=limit),
        Design(EFRON, p=EFRON_P),
        Design(COMPLETE),
    ]
    return [c for c in candidates if c.describe() != design.describe()]


def chosen_design(protocol: Protocol, *, procedure: str | None = None, mti: int | None = None,
                  block_sizes: tuple[int, ...] | None = None, p: Fraction | None = None,
                  urn_lambda: int | None = None) -> Design:
    """The protocol's design, or the one named on the command line (checked)."""
    if procedure is None:
        if any(x is not None for x in (mti, block_sizes, p, urn_lambda)):
            raise InvalidInput("name the procedure these parameters are for",
                               needs=("procedure",))
        return protocol.allocation.design.check()
    return Design(procedure=procedure, ratio=protocol.allocation.ratio,
                  block_sizes=block_sizes or (), mti=mti, urn_lambda=urn_lambda,
                  p=p).check()


def design_report(protocol: Protocol, *, design: Design | None = None, n: int | None = None,
                  rng: RandomSource | None = None, runs: int = SIMULATION_RUNS) -> DesignReport:
    """The protocol's design (or ``design``) beside the alternatives, for lists of ``n``
    (default: the largest expected stratum)."""
    own = protocol.allocation.design.check()
    first = design or own
    if len(set(first.ratio)) != 1:
        raise InvalidInput("the design report's exact figures are for 1:1 allocation only")
    sizes = expected_stratum_sizes(protocol)
    length = n if n is not None else max(sizes)
    source = rng or SystemRandomSource()
    rows = []
    for d in [first, *alternatives(first)]:
        rows.append(DesignRow(design_metrics(d, length), d.describe() == own.describe(),
                              trial_imbalance(d, sizes, source, runs)))
    return DesignReport(protocol.trial.id, length, sizes, tuple(rows))

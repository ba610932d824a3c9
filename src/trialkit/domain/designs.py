"""Randomization designs a protocol can choose, each generating a whole sequence in advance
so that it can be sealed like any list.

- ``permuted-blocks``: blocks of sizes drawn with the protocol's weights, each holding the
  arms in the ratio, in an order shuffled uniformly (any ratio);
- ``big-stick`` (Soares & Wu 1983): a fair coin while the imbalance is below the maximum
  tolerated imbalance (MTI), the lagging arm when it is reached (1:1);
- ``block-urn`` (Zhao & Weng 2011): an urn of lambda balls per ratio unit, a ball drawn
  without replacement, and one unit of balls returned whenever every arm has completed a
  unit; the imbalance never exceeds lambda units (any ratio);
- ``maximal`` (Berger, Ivanova & Knoll 2003): uniform over every sequence of the segment's
  length that ends balanced and never exceeds the MTI (1:1);
- ``efron`` (Efron 1971): the lagging arm with probability p, a fair coin when balanced (1:1);
- ``complete``: every allocation independent, with the ratio's probabilities (any ratio).

A sealed segment releases the envelopes asked for and holds the rest back (see
``services.enrolment.allocation``). Every procedure but ``complete`` carries on until its sequence
is
balanced again (a whole block), so a stratum extended any number of times is one sequence of
the procedure, within its imbalance limit. Every probability is a fraction drawn exactly
with :meth:`RandomSource.randbelow`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cache
from typing import Any

from trialkit.domain.errors import InvalidInput
from trialkit.domain.procedures import GENERATOR_NAME, RandomSource, generate_blocks, pick

PERMUTED_BLOCKS = "permuted-blocks"
BIG_STICK = "big-stick"
BLOCK_URN = "block-urn"
MAXIMAL = "maximal"
EFRON = "efron"
COMPLETE = "complete"
PROCEDURES = (PERMUTED_BLOCKS, BIG_STICK, BLOCK_URN, MAXIMAL, EFRON, COMPLETE)
ONE_TO_ONE_ONLY = frozenset({BIG_STICK, MAXIMAL, EFRON})
MAX_MTI = 20


@dataclass(frozen=True)
class Design:
    """A randomization procedure and its parameters, as a protocol states them."""

    procedure: str = PERMUTED_BLOCKS
    ratio: tuple[int, ...] = (1, 1)
    block_sizes: tuple[int, ...] = ()
    block_weights: tuple[Fraction, ...] = ()  # empty: every size equally likely
    mti: int | None = None  # big-stick, maximal: the maximum tolerated imbalance
    urn_lambda: int | None = None  # block-urn: balls per arm and ratio unit
    p: Fraction | None = None  # efron: probability of the lagging arm

    def problems(self) -> list[tuple[str, str]]:
        """(field, what is wrong) for each problem; empty when the design is sound."""
        return list(_problems(self))

    def check(self) -> Design:
        """The design itself, or :class:`InvalidInput` naming its first problem."""
        for where, what in self.problems():
            raise InvalidInput(f"allocation.{where}: {what}")
        return self

    def weights(self) -> tuple[Fraction, ...]:
        """The probability of each block size, in ``block_sizes`` order."""
        if not self.block_weights:
            return tuple(Fraction(1, len(self.block_sizes)) for _ in self.block_sizes)
        total = sum(self.block_weights)
        return tuple(w / total for w in self.block_weights)

    def parameters(self) -> dict[str, Any]:
        """The procedure's parameters as plain values (what reports and JSON show)."""
        if self.procedure == PERMUTED_BLOCKS:
            return {
                "block_sizes": list(self.block_sizes),
                "block_weights": [_number(w) for w in self.weights()],
            }
        if self.procedure in (BIG_STICK, MAXIMAL):
            return {"mti": self.mti}
        if self.procedure == BLOCK_URN:
            return {"lambda": self.urn_lambda}
        if self.procedure == EFRON:
            return {"p": _number(self.p or Fraction(0))}
        return {}

    def describe(self) -> dict[str, Any]:
        """The design as the protocol states it: procedure, ratio, parameters."""
        return {"procedure": self.procedure, "ratio": list(self.ratio)} | self.parameters()

    def label(self) -> str:
        """A short human name, e.g. ``big-stick (MTI 3)``."""
        params = self.parameters()
        if self.procedure == PERMUTED_BLOCKS:
            sizes = ", ".join(str(s) for s in self.block_sizes)
            uniform = len(set(self.weights())) <= 1
            weights = "" if uniform else " weighted " + ":".join(
                str(_number(w)) for w in self.weights())
            return f"permuted blocks ({sizes}{weights})"
        if self.procedure in (BIG_STICK, MAXIMAL):
            return f"{self.procedure} (MTI {params['mti']})"
        if self.procedure == BLOCK_URN:
            return f"block urn (lambda {params['lambda']})"
        if self.procedure == EFRON:
            return f"Efron's biased coin (p {self.p})"
        return "complete randomization"


def _number(value: Fraction) -> float | int:
    return int(value) if value.denominator == 1 else round(float(value), 6)


def _problems(d: Design) -> Any:
    if d.procedure not in PROCEDURES:
        choices = ", ".join(PROCEDURES)
        yield "procedure", f"unknown procedure {d.procedure!r}: choose one of {choices}"
        return
    if len(d.ratio) < 2 or any(r < 1 for r in d.ratio):
        yield "ratio", "needs a positive whole number for each of at least two arms"
        return
    one_to_one = len(set(d.ratio)) == 1
    if d.procedure in ONE_TO_ONE_ONLY and not one_to_one:
        yield "ratio", (
            f"{d.procedure} is defined for equal allocation only (ratio "
            f"{':'.join(map(str, d.ratio))}); use permuted-blocks or block-urn"
        )
    if d.procedure == PERMUTED_BLOCKS:
        yield from _block_problems(d)
    elif d.block_sizes or d.block_weights:
        yield "block_sizes", f"block sizes belong to permuted-blocks, not {d.procedure}"
    if d.procedure in (BIG_STICK, MAXIMAL):
        if d.mti is None or not 1 <= d.mti <= MAX_MTI:
            yield "mti", f"{d.procedure} needs a maximum tolerated imbalance from 1 to {MAX_MTI}"
    elif d.mti is not None:
        yield "mti", (
            f"a maximum tolerated imbalance belongs to big-stick or maximal, not {d.procedure}"
        )
    if d.procedure == BLOCK_URN:
        if d.urn_lambda is None or not 1 <= d.urn_lambda <= MAX_MTI:
            yield "lambda", f"block-urn needs lambda (balls per arm) from 1 to {MAX_MTI}"
    elif d.urn_lambda is not None:
        yield "lambda", f"lambda belongs to block-urn, not {d.procedure}"
    if d.procedure == EFRON:
        if d.p is None or not Fraction(1, 2) < d.p <= 1:
            yield "p", "efron needs the probability p of the lagging arm, above 0.5 and at most 1"
    elif d.p is not None:
        yield "p", f"p belongs to efron, not {d.procedure}"


def _block_problems(d: Design) -> Any:
    if not d.block_sizes:
        yield "block_sizes", "no block sizes"
        return
    unit, shown = sum(d.ratio), ":".join(map(str, d.ratio))
    for i, size in enumerate(d.block_sizes):
        if size < 1:
            yield f"block_sizes[{i}]", f"must be positive (got {size})"
        elif size % unit:
            yield f"block_sizes[{i}]", f"{size} is not a multiple of {unit} (the ratio {shown})"
    if len(set(d.block_sizes)) != len(d.block_sizes):
        yield "block_sizes", "a block size is listed more than once"
    if d.block_weights:
        if len(d.block_weights) != len(d.block_sizes):
            yield "block_weights", (
                f"{len(d.block_weights)} weights for {len(d.block_sizes)} block sizes")
        elif any(w <= 0 for w in d.block_weights):
            yield "block_weights", "every weight must be positive"


# --- generating a segment ------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """A generated sequence (arm indices into the protocol's arms) and, for permuted
    blocks, the sizes of the blocks drawn, in order."""

    arms: tuple[int, ...]
    blocks: tuple[int, ...] = field(default=())


def _chance(rng: RandomSource, p: Fraction) -> bool:
    """True with probability exactly ``p``."""
    return rng.randbelow(p.denominator) < p.numerator


def next_probability(design: Design, imbalance: int) -> Fraction:
    """P(the first arm next | imbalance = first minus second), for the 1:1 procedures that
    depend on the imbalance alone (big-stick, block-urn, efron, complete)."""
    d = imbalance
    if design.procedure == BIG_STICK:
        assert design.mti is not None
        if d >= design.mti:
            return Fraction(0)
        if d <= -design.mti:
            return Fraction(1)
        return Fraction(1, 2)
    if design.procedure == BLOCK_URN:
        lam = design.urn_lambda
        assert lam is not None
        return Fraction(lam - max(d, 0), 2 * lam - abs(d))
    if design.procedure == EFRON:
        assert design.p is not None
        if d == 0:
            return Fraction(1, 2)
        return 1 - design.p if d > 0 else design.p
    if design.procedure == COMPLETE:
        return Fraction(1, 2)
    raise ValueError(f"{design.procedure} does not depend on the imbalance alone")


@cache
def maximal_paths(length: int, mti: int) -> dict[tuple[int, int], int]:
    """Berger's maximal procedure: the number of ways to finish a sequence of ``length`` from
    (step, imbalance) balanced and within the MTI."""
    counts: dict[tuple[int, int], int] = {(length, 0): 1}
    for i in range(length - 1, -1, -1):
        for d in range(-mti, mti + 1):
            if (d + i) % 2:
                continue
            counts[(i, d)] = counts.get((i + 1, d + 1), 0) + counts.get((i + 1, d - 1), 0)
    return counts


def maximal_probability(length: int, mti: int, step: int, imbalance: int) -> Fraction:
    """P(the first arm at ``step`` (0-based) | imbalance) under the maximal procedure."""
    paths = maximal_paths(length, mti)
    here = paths.get((step, imbalance), 0)
    if here == 0:
        raise ValueError("no balanced completion from this state")
    return Fraction(paths.get((step + 1, imbalance + 1), 0), here)


def _urn_probabilities(ratio: Sequence[int], lam: int, counts: Sequence[int]) -> list[Fraction]:
    """Block urn: each arm's probability given the counts so far (Zhao & Weng 2011)."""
    units = min(c // r for c, r in zip(counts, ratio, strict=True))
    balls = [lam * r - c + units * r for c, r in zip(counts, ratio, strict=True)]
    total = sum(balls)
    return [Fraction(b, total) for b in balls]


def generate_segment(design: Design, n_slots: int, rng: RandomSource) -> Segment:
    """A sequence of at least ``n_slots`` allocations (arm indices), ending balanced (but for
    complete randomization, exactly ``n_slots``)."""
    design.check()
    if n_slots < 1:
        raise InvalidInput(f"the number of slots must be at least 1, not {n_slots}")
    ratio = design.ratio
    k = len(ratio)
    if design.procedure == PERMUTED_BLOCKS:
        codes = [str(i) for i in range(k)]
        drawn = generate_blocks(codes, ratio, design.block_sizes, n_slots, rng, design.weights())
        return Segment(tuple(int(a) for b in drawn for a in b.arms),
                       tuple(b.size for b in drawn))
    if design.procedure == COMPLETE:
        total = sum(ratio)
        probabilities = [Fraction(r, total) for r in ratio]
        return Segment(tuple(pick(rng, probabilities) for _ in range(n_slots)))
    if design.procedure == MAXIMAL:
        assert design.mti is not None
        length = n_slots + n_slots % 2
        seq: list[int] = []
        d = 0
        for step in range(length):
            first = _chance(rng, maximal_probability(length, design.mti, step, d))
            seq.append(0 if first else 1)
            d += 1 if first else -1
        return Segment(tuple(seq))
    if design.procedure == BLOCK_URN:
        assert design.urn_lambda is not None
        counts = [0] * k
        seq = []
        while len(seq) < n_slots or not _balanced(counts, ratio):
            arm = pick(rng, _urn_probabilities(ratio, design.urn_lambda, counts))
            counts[arm] += 1
            seq.append(arm)
        return Segment(tuple(seq))
    # big-stick, efron: 1:1, a function of the imbalance
    seq = []
    d = 0
    while len(seq) < n_slots or d != 0:
        first = _chance(rng, next_probability(design, d))
        seq.append(0 if first else 1)
        d += 1 if first else -1
    return Segment(tuple(seq))


def _balanced(counts: Sequence[int], ratio: Sequence[int]) -> bool:
    units = counts[0] / ratio[0]
    return all(c == units * r for c, r in zip(counts, ratio, strict=True))


def policy_of(design: Design) -> dict[str, Any]:
    """What is sealed with a list besides the blocks drawn: the design and the generator."""
    return design.describe() | {"generator": GENERATOR_NAME}

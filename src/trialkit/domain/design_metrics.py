"""Exact properties of a 1:1 randomization design over a list of ``n`` allocations, by
dynamic programming over the imbalance (no simulation):

- the expected proportion of correct guesses by someone who knows every past allocation
  and guesses the arm that is behind (the convergence strategy, Blackwell & Hodges 1957),
  a coin toss when the arms are level;
- the expected proportion of forced allocations (the procedure leaves no choice);
- the expected maximum absolute imbalance over the list;
- the distribution of the final imbalance (first arm minus second).

The state is what the procedure's next probability depends on: the imbalance for the
procedures of :func:`trialkit.domain.designs.next_probability`; the step too for the
maximal procedure; the block's size and position for permuted blocks (within a block the
imbalance is the list's, since every block ends balanced). Each state carries the largest
imbalance reached so far, for the expected maximum.

And a simulation of the trial-wide imbalance (the sum over strata) for given stratum sizes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

from trialkit.domain.designs import (
    MAXIMAL,
    PERMUTED_BLOCKS,
    Design,
    generate_segment,
    maximal_probability,
    next_probability,
)
from trialkit.domain.errors import InvalidInput
from trialkit.domain.procedures import RandomSource

MAX_N = 2000

Number = Fraction | float


@dataclass(frozen=True)
class DesignMetrics:
    """Exact figures of one design for a list of ``n`` allocations."""

    design: Design
    n: int
    correct_guess: float
    forced: float
    expected_max_imbalance: float
    final_imbalance: dict[int, float]  # first arm minus second -> probability

    def as_dict(self) -> dict[str, object]:
        return {
            "procedure": self.design.procedure,
            "label": self.design.label(),
            "parameters": self.design.parameters(),
            "n": self.n,
            "correct_guess": round(self.correct_guess, 6),
            "forced": round(self.forced, 6),
            "expected_max_imbalance": round(self.expected_max_imbalance, 6),
            "final_imbalance": {
                str(k): round(v, 6) for k, v in sorted(self.final_imbalance.items())
            },
        }


# A state: (what the next probability depends on, imbalance, largest |imbalance| so far).
State = tuple[Hashable, int, int]


def _run(n: int, start: Iterable[tuple[Number, Hashable]],
         prob_first: Callable[[Hashable, int, int], Number],
         after: Callable[[Hashable, int, int, bool], Hashable], exact: bool) -> tuple[
             Number, Number, Number, dict[int, Number]]:
    one: Number = Fraction(1) if exact else 1.0
    half: Number = Fraction(1, 2) if exact else 0.5
    states: dict[State, Number] = defaultdict(lambda: 0 * one)
    for weight, key in start:
        states[(key, 0, 0)] += weight
    correct = forced = 0 * one
    for i in range(n):
        nxt: dict[State, Number] = defaultdict(lambda: 0 * one)
        for (key, d, top), weight in states.items():
            p = prob_first(key, d, i)
            if not exact:
                p = float(p)
            if d < 0:
                correct += weight * p
            elif d > 0:
                correct += weight * (one - p)
            else:
                correct += weight * half
            if p in (0, 1):
                forced += weight
            for first, q in ((True, p), (False, one - p)):
                if q == 0:
                    continue
                nd = d + (1 if first else -1)
                nkey = after(key, d, i, first)
                nxt[(nkey, nd, max(top, abs(nd)))] += weight * q
        states = nxt
    expected_max = sum((w * top for (_, _, top), w in states.items()), 0 * one)
    final: dict[int, Number] = defaultdict(lambda: 0 * one)
    for (_, d, _), w in states.items():
        final[d] += w
    return correct / n, forced / n, expected_max, dict(final)


def _machine(design: Design, n: int) -> tuple[
        list[tuple[Fraction, Hashable]], Callable[[Hashable, int, int], Fraction],
        Callable[[Hashable, int, int, bool], Hashable]]:
    if design.procedure == MAXIMAL:
        assert design.mti is not None
        length = n + n % 2
        mti = design.mti

        def prob_max(key: Hashable, d: int, i: int) -> Fraction:
            return maximal_probability(length, mti, i, d)

        return [(Fraction(1), None)], prob_max, lambda key, d, i, first: None

    def prob_d(key: Hashable, d: int, i: int) -> Fraction:
        return next_probability(design, d)

    return [(Fraction(1), None)], prob_d, lambda key, d, i, first: None


def _blocks_run(design: Design, n: int, exact: bool) -> tuple[
        Number, Number, Number, dict[int, Number]]:
    """Permuted blocks: as :func:`_run`, with a fresh block (size drawn) after each block."""
    one: Number = Fraction(1) if exact else 1.0
    half: Number = Fraction(1, 2) if exact else 0.5
    draws = [(w if exact else float(w), s)
             for s, w in zip(design.block_sizes, design.weights(), strict=True)]
    states: dict[tuple[int, int, int, int], Number] = defaultdict(lambda: 0 * one)
    for w, s in draws:
        states[(s, 0, 0, 0)] += w
    correct = forced = 0 * one
    for _ in range(n):
        nxt: dict[tuple[int, int, int, int], Number] = defaultdict(lambda: 0 * one)
        for (size, pos, d, top), weight in states.items():
            ones = (pos + d) // 2
            p: Number = Fraction(size // 2 - ones, size - pos)
            if not exact:
                p = float(p)
            if d < 0:
                correct += weight * p
            elif d > 0:
                correct += weight * (one - p)
            else:
                correct += weight * half
            if p in (0, 1):
                forced += weight
            for first, q in ((True, p), (False, one - p)):
                if q == 0:
                    continue
                nd = d + (1 if first else -1)
                ntop = max(top, abs(nd))
                if pos + 1 == size:  # block complete (nd == 0): the next block's size is drawn
                    for w, s in draws:
                        nxt[(s, 0, nd, ntop)] += weight * q * w
                else:
                    nxt[(size, pos + 1, nd, ntop)] += weight * q
        states = nxt
    expected_max = sum((w * top for (_, _, _, top), w in states.items()), 0 * one)
    final: dict[int, Number] = defaultdict(lambda: 0 * one)
    for (_, _, d, _), w in states.items():
        final[d] += w
    return correct / n, forced / n, expected_max, dict(final)


def exact_figures(design: Design, n: int, *, exact: bool = False) -> tuple[
        Number, Number, Number, dict[int, Number]]:
    """(correct guess, forced, expected max imbalance, final imbalance distribution); with
    ``exact`` in fractions (small n), else in floating point."""
    design.check()
    if len(set(design.ratio)) != 1:
        raise InvalidInput("exact design figures are for 1:1 allocation only")
    if not 1 <= n <= MAX_N:
        raise InvalidInput(f"list length {n}: give a length from 1 to {MAX_N}")
    if design.procedure == PERMUTED_BLOCKS:
        return _blocks_run(design, n, exact)
    start, prob, after = _machine(design, n)
    return _run(n, start, prob, after, exact)


def design_metrics(design: Design, n: int) -> DesignMetrics:
    """The exact figures of ``design`` for a list of ``n`` allocations."""
    correct, forced, top, final = exact_figures(design, n)
    return DesignMetrics(design, n, float(correct), float(forced), float(top),
                         {d: float(p) for d, p in final.items() if p > 1e-12})


def trial_imbalance(design: Design, stratum_sizes: Sequence[int], rng: RandomSource,
                    runs: int = 2000) -> dict[int, float]:
    """Simulated distribution of the trial-wide final imbalance (first arm minus second,
    summed over strata) when each stratum enrols its given number, from its own list."""
    if len(set(design.ratio)) != 1:
        raise InvalidInput("the trial-wide imbalance is simulated for 1:1 allocation only")
    counts: dict[int, int] = defaultdict(int)
    for _ in range(runs):
        total = 0
        for size in stratum_sizes:
            if size <= 0:
                continue
            arms = generate_segment(design, size, rng).arms[:size]
            total += sum(1 if a == 0 else -1 for a in arms)
        counts[total] += 1
    return {d: c / runs for d, c in sorted(counts.items())}

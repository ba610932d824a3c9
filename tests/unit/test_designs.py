"""Randomization designs: the exact figures against published values and against a brute
force enumeration written here from each procedure's definition (independently of the
dynamic programme), and each generator's own distribution (chi-square over many draws)."""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Iterator
from fractions import Fraction as F

import pytest

from trialkit.domain.design_metrics import design_metrics, exact_figures, trial_imbalance
from trialkit.domain.designs import (
    BIG_STICK,
    BLOCK_URN,
    COMPLETE,
    EFRON,
    MAXIMAL,
    PERMUTED_BLOCKS,
    Design,
    generate_segment,
)
from trialkit.domain.errors import InvalidInput

PBD_46 = Design(PERMUTED_BLOCKS, block_sizes=(4, 6))
BSD_3 = Design(BIG_STICK, mti=3)


class SeededRandom:
    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._random.randrange(n)


# --- published values --------------------------------------------------------------------------


def test_permuted_blocks_of_4_or_6_are_guessed_right_69_percent_of_56_allocations() -> None:
    # Correct guesses under the convergence strategy for permuted blocks of random size 4 or
    # 6 at 56 allocations: 0.690 (Zhao et al. 2011; Berger, Ivanova & Knoll 2003); and
    # 28 % of allocations forced in the long run (4/3 per block of 4, 3/2 per block of 6:
    # (4/3 + 3/2) / 2 / 5 = 0.283), 0.276 over the first 56.
    m = design_metrics(PBD_46, 56)
    assert m.correct_guess == pytest.approx(0.690, abs=0.0005)
    assert 0.27 < m.forced < 0.2834
    assert design_metrics(PBD_46, 1200).forced == pytest.approx(17 / 60, abs=0.001)


def test_big_stick_with_imbalance_limit_3_is_guessed_right_58_percent_of_56() -> None:
    # Soares & Wu's big stick design, MTI 3: 0.579 at 56 allocations (Zhao et al. 2011).
    assert design_metrics(BSD_3, 56).correct_guess == pytest.approx(0.579, abs=0.0005)


@pytest.mark.parametrize("mti", [1, 2, 3, 4])
def test_big_stick_tends_to_a_half_plus_one_over_four_times_the_limit(mti: int) -> None:
    # The imbalance is a random walk reflected at +-b: in the long run it sits at each
    # inner value with weight 1 and at each limit with weight 1/2 (2b in all), and only at
    # a limit is the guess sure, so P(correct) -> 1/2 + 1/2 * 1/(2b).
    limit = F(1, 2) + F(1, 4 * mti)
    assert design_metrics(Design(BIG_STICK, mti=mti), 2000).correct_guess == pytest.approx(
        float(limit), abs=0.002)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_fixed_blocks_give_blackwell_and_hodges_expected_correct_guesses(k: int) -> None:
    # Blackwell & Hodges (1957): in a block of 2k the convergence strategy guesses right
    # k + 2^(2k-1) / C(2k, k) - 1/2 times on average.
    per_block = k + F(2 ** (2 * k - 1), math.comb(2 * k, k)) - F(1, 2)
    correct, _, _, final = exact_figures(Design(PERMUTED_BLOCKS, block_sizes=(2 * k,)), 6 * k,
                                         exact=True)
    assert correct == per_block / (2 * k)
    assert final == {0: 1}


def test_complete_randomization_is_a_coin_toss() -> None:
    n = 9
    correct, forced, top, final = exact_figures(Design(COMPLETE), n, exact=True)
    assert (correct, forced) == (F(1, 2), 0)
    assert final == {2 * a - n: F(math.comb(n, a), 2 ** n) for a in range(n + 1)}


# --- the exact figures against a brute force enumeration ---------------------------------------


def _sequences_markov(n: int, p_first: object) -> Iterator[tuple[tuple[int, ...], F,
                                                                   list[F]]]:
    """Every sequence of n (0 = first arm), its probability, and the probability the
    procedure gave the first arm at each step; ``p_first(history)`` from the definition."""
    for seq in itertools.product((0, 1), repeat=n):
        prob, steps = F(1), []
        for i, arm in enumerate(seq):
            p = p_first(seq[:i])  # type: ignore[operator]
            steps.append(p)
            prob *= p if arm == 0 else 1 - p
            if prob == 0:
                break
        if prob:
            yield seq, prob, steps


def _imbalance(history: tuple[int, ...]) -> int:
    return sum(1 if a == 0 else -1 for a in history)


def _big_stick(b: int) -> object:
    def p(history: tuple[int, ...]) -> F:
        d = _imbalance(history)
        return F(0) if d >= b else F(1) if d <= -b else F(1, 2)
    return p


def _efron(q: F) -> object:
    def p(history: tuple[int, ...]) -> F:
        d = _imbalance(history)
        return F(1, 2) if d == 0 else (q if d < 0 else 1 - q)
    return p


def _block_urn(lam: int) -> object:
    # The urn as Zhao & Weng describe it: lam balls of each arm; a ball drawn is not
    # replaced, but as soon as one ball of each arm has been drawn, one of each goes back.
    def p(history: tuple[int, ...]) -> F:
        urn, out = [lam, lam], [0, 0]
        for arm in history:
            urn[arm] -= 1
            out[arm] += 1
            if min(out) >= 1:
                out = [o - 1 for o in out]
                urn = [u + 1 for u in urn]
        return F(urn[0], sum(urn))
    return p


def _figures_from(n: int, runs: Iterator[tuple[tuple[int, ...], F, list[F]]]) -> tuple[
        F, F, F, dict[int, F]]:
    correct = forced = top = F(0)
    final: Counter[int] = Counter()
    for seq, prob, steps in runs:
        d, worst = 0, 0
        for i, arm in enumerate(seq):
            guess_right = F(1, 2) if d == 0 else F(int((d < 0) == (arm == 0)))
            correct += prob * guess_right
            forced += prob * (steps[i] in (0, 1))
            d += 1 if arm == 0 else -1
            worst = max(worst, abs(d))
        top += prob * worst
        final[d] += prob  # type: ignore[assignment]
    return correct / n, forced / n, top, {k: F(v) for k, v in final.items() if v}


@pytest.mark.parametrize(("design", "definition"), [
    (Design(BIG_STICK, mti=1), _big_stick(1)),
    (Design(BIG_STICK, mti=2), _big_stick(2)),
    (Design(EFRON, p=F(2, 3)), _efron(F(2, 3))),
    (Design(BLOCK_URN, urn_lambda=1), _block_urn(1)),
    (Design(BLOCK_URN, urn_lambda=2), _block_urn(2)),
    (Design(BLOCK_URN, urn_lambda=3), _block_urn(3)),
])
@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_exact_figures_equal_the_enumeration_of_every_sequence(
    design: Design, definition: object, n: int
) -> None:
    expected = _figures_from(n, _sequences_markov(n, definition))
    assert exact_figures(design, n, exact=True) == expected


def _maximal_runs(n: int, b: int) -> Iterator[tuple[tuple[int, ...], F, list[F]]]:
    # Berger's maximal procedure: every sequence of n that never exceeds b and ends
    # balanced is equally likely; the step probabilities are counts of those sequences.
    valid = [s for s in itertools.product((0, 1), repeat=n)
             if _imbalance(s) == 0
             and all(abs(_imbalance(s[:i])) <= b for i in range(1, n + 1))]
    for seq in valid:
        steps = []
        for i in range(n):
            same = [s for s in valid if s[:i] == seq[:i]]
            steps.append(F(sum(1 for s in same if s[i] == 0), len(same)))
        yield seq, F(1, len(valid)), steps


@pytest.mark.parametrize(("n", "b"), [(2, 1), (6, 1), (8, 2), (10, 3)])
def test_maximal_procedure_figures_equal_the_enumeration(n: int, b: int) -> None:
    assert exact_figures(Design(MAXIMAL, mti=b), n, exact=True) == _figures_from(
        n, _maximal_runs(n, b))


def _block_runs(n: int, sizes: tuple[int, ...], weights: tuple[F, ...]) -> Iterator[
        tuple[tuple[int, ...], F, list[F]]]:
    # Permuted blocks: a run of block sizes (each drawn with its weight), each block one of
    # its C(s, s/2) orders with equal probability; forced when the block's rest is one arm.
    def plans(total: int) -> Iterator[tuple[int, ...]]:
        if total >= n:
            yield ()
            return
        for s in sizes:
            for rest in plans(total + s):
                yield (s, *rest)

    for plan in plans(0):
        p_plan = math.prod((weights[sizes.index(s)] for s in plan), start=F(1))
        orders = [[o for o in itertools.product((0, 1), repeat=s) if sum(o) == s // 2]
                  for s in plan]
        for combo in itertools.product(*orders):
            seq = tuple(a for block in combo for a in block)[:n]
            prob = p_plan * math.prod((F(1, len(o)) for o in orders), start=F(1))
            steps, at = [], 0
            for block in combo:
                for j in range(len(block)):
                    if at < n:
                        rest = block[j:]
                        steps.append(F(rest.count(0), len(rest)))
                    at += 1
            yield seq, prob, steps


@pytest.mark.parametrize(("sizes", "weights"), [
    ((2,), (F(1),)), ((4,), (F(1),)), ((4, 6), (F(1, 2), F(1, 2))),
    ((2, 4), (F(1, 4), F(3, 4))),
])
@pytest.mark.parametrize("n", [1, 5, 9])
def test_permuted_block_figures_equal_the_enumeration(
    sizes: tuple[int, ...], weights: tuple[F, ...], n: int
) -> None:
    design = Design(PERMUTED_BLOCKS, block_sizes=sizes,
                    block_weights=weights if len(sizes) > 1 else ())
    assert exact_figures(design, n, exact=True) == _figures_from(n, _block_runs(n, sizes,
                                                                                  weights))


def test_metrics_refuse_unequal_allocation_and_silly_lengths() -> None:
    with pytest.raises(InvalidInput, match="1:1"):
        design_metrics(Design(PERMUTED_BLOCKS, ratio=(2, 1), block_sizes=(3, 6)), 30)
    with pytest.raises(InvalidInput, match="list length 0"):
        design_metrics(BSD_3, 0)


# --- the generators' own distributions ---------------------------------------------------------


def _chi2_critical(df: int) -> float:
    """The 0.999 quantile of chi-square (Wilson-Hilferty; z = 3.090)."""
    return df * (1 - 2 / (9 * df) + 3.090 * math.sqrt(2 / (9 * df))) ** 3


def _prefix_distribution(runs: Iterator[tuple[tuple[int, ...], F, list[F]]],
                         k: int) -> dict[tuple[int, ...], F]:
    dist: Counter[tuple[int, ...]] = Counter()
    for seq, prob, _ in runs:
        dist[seq[:k]] += prob  # type: ignore[assignment]
    return {s: F(p) for s, p in dist.items() if p}


@pytest.mark.parametrize(("design", "exact"), [
    (Design(BIG_STICK, mti=2), lambda: _prefix_distribution(
        _sequences_markov(6, _big_stick(2)), 6)),
    (Design(EFRON, p=F(3, 4)), lambda: _prefix_distribution(
        _sequences_markov(6, _efron(F(3, 4))), 6)),
    (Design(BLOCK_URN, urn_lambda=2), lambda: _prefix_distribution(
        _sequences_markov(6, _block_urn(2)), 6)),
    (Design(MAXIMAL, mti=2), lambda: _prefix_distribution(_maximal_runs(6, 2), 6)),
    (Design(COMPLETE), lambda: {s: F(1, 64) for s in itertools.product((0, 1), repeat=6)}),
    (Design(PERMUTED_BLOCKS, block_sizes=(2, 4), block_weights=(F(1), F(3))),
     lambda: _prefix_distribution(_block_runs(6, (2, 4), (F(1, 4), F(3, 4))), 6)),
])
def test_each_generator_draws_its_first_six_allocations_as_the_procedure_says(
    design: Design, exact: object
) -> None:
    expected: dict[tuple[int, ...], F] = exact()  # type: ignore[operator]
    rng = SeededRandom(2024)
    draws = 20_000
    seen = Counter(generate_segment(design, 6, rng).arms[:6] for _ in range(draws))
    assert set(seen) <= set(expected)  # nothing the procedure cannot give
    chi2 = sum((seen[s] - draws * p) ** 2 / (draws * p) for s, p in expected.items())
    assert chi2 < _chi2_critical(len(expected) - 1), chi2


@pytest.mark.parametrize("design", [
    Design(BIG_STICK, mti=3), Design(BLOCK_URN, urn_lambda=2), Design(MAXIMAL, mti=2),
    Design(EFRON, p=F(2, 3)), PBD_46,
])
def test_every_segment_ends_balanced_and_keeps_within_its_limit(design: Design) -> None:
    rng = SeededRandom(7)
    limit = {BIG_STICK: design.mti, BLOCK_URN: design.urn_lambda, MAXIMAL: design.mti,
             PERMUTED_BLOCKS: 3}.get(design.procedure)
    for n in range(1, 40):
        arms = generate_segment(design, n, rng).arms
        assert len(arms) >= n and _imbalance(arms) == 0
        if limit is not None:
            assert max(abs(_imbalance(arms[:i])) for i in range(1, len(arms) + 1)) <= limit


def test_complete_randomization_gives_exactly_the_slots_asked_for() -> None:
    assert len(generate_segment(Design(COMPLETE), 13, SeededRandom(1)).arms) == 13


def test_unequal_allocation_keeps_the_ratio_in_block_urn_and_permuted_blocks() -> None:
    rng = SeededRandom(3)
    urn = Design(BLOCK_URN, ratio=(2, 1), urn_lambda=2)
    for n in (1, 5, 12):
        arms = generate_segment(urn, n, rng).arms
        assert arms.count(0) == 2 * arms.count(1)
        for i in range(1, len(arms) + 1):  # at most lambda ratio units apart at any point
            units = min(arms[:i].count(0) // 2, arms[:i].count(1))
            assert arms[:i].count(0) - 2 * units <= 2 * 2 and arms[:i].count(1) - units <= 2
    blocks = Design(PERMUTED_BLOCKS, ratio=(2, 1), block_sizes=(3, 6))
    seg = generate_segment(blocks, 20, rng)
    assert seg.arms.count(0) == 2 * seg.arms.count(1) and sum(seg.blocks) == len(seg.arms)


def test_weighted_block_sizes_are_drawn_with_their_weights() -> None:
    design = Design(PERMUTED_BLOCKS, block_sizes=(4, 6), block_weights=(F(1), F(3)))
    rng = SeededRandom(11)
    sizes = Counter(s for _ in range(4000) for s in generate_segment(design, 1, rng).blocks)
    total = sum(sizes.values())
    chi2 = sum((sizes[s] - total * p) ** 2 / (total * p) for s, p in ((4, 0.25), (6, 0.75)))
    assert chi2 < _chi2_critical(1)


@pytest.mark.parametrize(("design", "message"), [
    (Design("urn"), "unknown procedure 'urn'"),
    (Design(BIG_STICK), "maximum tolerated imbalance"),
    (Design(BIG_STICK, ratio=(2, 1), mti=3), "equal allocation only"),
    (Design(EFRON, p=F(1, 2)), "above 0.5"),
    (Design(BLOCK_URN), "lambda"),
    (Design(PERMUTED_BLOCKS, block_sizes=(4, 5)), "5 is not a multiple of 2"),
    (Design(PERMUTED_BLOCKS, block_sizes=(4, 6), block_weights=(F(1),)), "1 weights for 2"),
    (Design(COMPLETE, mti=3), "belongs to big-stick or maximal"),
])
def test_a_bad_design_is_refused_with_a_clear_message(design: Design, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        design.check()


def test_trial_wide_imbalance_of_balanced_blocks_is_small() -> None:
    dist = trial_imbalance(PBD_46, [10, 10, 7], SeededRandom(5), runs=500)
    assert sum(dist.values()) == pytest.approx(1)
    assert max(abs(d) for d in dist) <= 9  # at most 3 per stratum

"""Permuted block generation: balance, sizes, and statistical uniformity of the draws."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Hashable, Sequence
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trialkit.domain.errors import InvalidInput
from trialkit.domain.procedures import (
    Block,
    SystemRandomSource,
    describe_policy,
    flatten,
    generate_blocks,
    policy_hash,
)

# Upper 0.999 quantiles of the chi-square distribution, by degrees of freedom.
CHI2_CRIT_999 = {1: 10.83, 2: 13.82, 5: 20.52, 14: 36.12, 19: 43.82}

ONE_TO_ONE = (("A", "B"), (1, 1), (4, 6))
TWO_TO_ONE = (("A", "P"), (2, 1), (3, 6))


class SeededRandom:
    """A deterministic RandomSource for reproducible statistics."""

    def __init__(self, seed: int) -> None:
        self._random = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._random.randrange(n)


K = TypeVar("K", bound=Hashable)


def chi_square(observed: Counter[K], categories: Sequence[K]) -> float:
    """Goodness-of-fit statistic against a uniform distribution over ``categories``."""
    total = sum(observed[c] for c in categories)
    expected = total / len(categories)
    return sum((observed[c] - expected) ** 2 / expected for c in categories)


def distinct_orders(
    arm_codes: Sequence[str], ratio: Sequence[int], size: int
) -> list[tuple[str, ...]]:
    per_unit = size // sum(ratio)
    pool = [
        code for code, part in zip(arm_codes, ratio, strict=True) for _ in range(part * per_unit)
    ]
    return sorted(set(itertools.permutations(pool)))


def assert_balanced(block: Block, arm_codes: Sequence[str], ratio: Sequence[int]) -> None:
    counts = Counter(block.arms)
    for code, part in zip(arm_codes, ratio, strict=True):
        assert counts[code] == block.size * part // sum(ratio)
    assert set(counts) == set(arm_codes)


def many_blocks(
    arms: Sequence[str], ratio: Sequence[int], sizes: Sequence[int], seed: int
) -> list[Block]:
    rng = SeededRandom(seed)
    return [b for _ in range(1000) for b in generate_blocks(arms, ratio, sizes, 120, rng)]


@pytest.mark.parametrize(("arms", "ratio", "sizes"), [ONE_TO_ONE, TWO_TO_ONE])
def test_every_block_is_balanced_to_the_ratio(
    arms: tuple[str, ...], ratio: tuple[int, ...], sizes: tuple[int, ...]
) -> None:
    blocks = generate_blocks(arms, ratio, sizes, 200, SeededRandom(1))
    for block in blocks:
        assert block.size in sizes
        assert len(block.arms) == block.size
        assert_balanced(block, arms, ratio)


@pytest.mark.parametrize(("arms", "ratio", "sizes"), [ONE_TO_ONE, TWO_TO_ONE])
@pytest.mark.parametrize("n_slots", [1, 3, 4, 5, 37, 100])
def test_list_is_whole_blocks_reaching_at_least_n_slots(
    arms: tuple[str, ...], ratio: tuple[int, ...], sizes: tuple[int, ...], n_slots: int
) -> None:
    blocks = generate_blocks(arms, ratio, sizes, n_slots, SeededRandom(n_slots))
    sequence = flatten(blocks)
    assert len(sequence) == sum(b.size for b in blocks) >= n_slots
    # No more blocks than needed: without the last one the list would be short.
    assert len(sequence) - blocks[-1].size < n_slots


def test_flatten_keeps_allocation_order() -> None:
    blocks = [Block(2, ("A", "B")), Block(4, ("B", "B", "A", "A"))]
    assert flatten(blocks) == ["A", "B", "B", "B", "A", "A"]


@pytest.mark.parametrize(("arms", "ratio", "sizes"), [ONE_TO_ONE, TWO_TO_ONE])
def test_every_order_within_a_block_is_equally_likely(
    arms: tuple[str, ...], ratio: tuple[int, ...], sizes: tuple[int, ...]
) -> None:
    blocks = many_blocks(arms, ratio, sizes, seed=20240601)
    for size in sizes:
        orders = distinct_orders(arms, ratio, size)
        observed = Counter(b.arms for b in blocks if b.size == size)
        assert set(observed) == set(orders)
        assert sum(observed.values()) / len(orders) >= 50  # enough for chi-square
        assert chi_square(observed, orders) < CHI2_CRIT_999[len(orders) - 1]


def test_one_to_one_has_6_orders_of_4_and_20_of_6() -> None:
    assert len(distinct_orders(*ONE_TO_ONE[:2], 4)) == 6
    assert len(distinct_orders(*ONE_TO_ONE[:2], 6)) == 20


@pytest.mark.parametrize(("arms", "ratio", "sizes"), [ONE_TO_ONE, TWO_TO_ONE])
def test_block_size_choice_is_uniform(
    arms: tuple[str, ...], ratio: tuple[int, ...], sizes: tuple[int, ...]
) -> None:
    blocks = many_blocks(arms, ratio, sizes, seed=7)
    observed = Counter(b.size for b in blocks)
    assert chi_square(observed, sizes) < CHI2_CRIT_999[len(sizes) - 1]


def test_two_strata_from_one_stream_are_independent() -> None:
    arms, ratio, sizes = ONE_TO_ONE
    rng = SeededRandom(99)
    table: Counter[tuple[str, str]] = Counter()
    for _ in range(3000):
        first = flatten(generate_blocks(arms, ratio, sizes, 12, rng))
        second = flatten(generate_blocks(arms, ratio, sizes, 12, rng))
        table[(first[0], second[0])] += 1
    n = sum(table.values())
    rows = {a: table[(a, "A")] + table[(a, "B")] for a in arms}
    cols = {b: table[("A", b)] + table[("B", b)] for b in arms}
    statistic = sum(
        (table[(a, b)] - rows[a] * cols[b] / n) ** 2 / (rows[a] * cols[b] / n)
        for a in arms
        for b in arms
    )
    assert statistic < CHI2_CRIT_999[1]


def test_system_source_gives_balanced_blocks() -> None:
    arms, ratio, sizes = TWO_TO_ONE
    for block in generate_blocks(arms, ratio, sizes, 30, SystemRandomSource()):
        assert_balanced(block, arms, ratio)


@pytest.mark.parametrize(
    ("arms", "ratio", "sizes", "n_slots", "message"),
    [
        (("A", "B"), (1, 1), (4, 5), 10, "block size 5 is not a multiple of 2 (ratio 1:1)"),
        (("A", "B"), (2, 1), (4,), 10, "block size 4 is not a multiple of 3 (ratio 2:1)"),
        (("A", "B"), (1, 1), (), 10, "at least one block size is needed"),
        (("A", "B"), (1, 1), (0,), 10, "block size 0 must be a positive whole number"),
        (("A", "B"), (1, 1), (-4,), 10, "block size -4 must be a positive whole number"),
        (("A", "B"), (1, 1), (4, 4), 10, "block size 4 is listed more than once"),
        (("A", "B"), (1, 0), (4,), 10, "allocation ratio 1:0 must be made of positive"),
        (("A", "B"), (1, 1, 1), (6,), 10, "ratio 1:1:1 has 3 parts but there are 2 arms"),
        (("A",), (1,), (2,), 10, "at least two arms"),
        (("A", "A"), (1, 1), (4,), 10, "arm codes repeat"),
        (("A", "B"), (1, 1), (4,), 0, "number of slots must be at least 1"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_message(
    arms: tuple[str, ...],
    ratio: tuple[int, ...],
    sizes: tuple[int, ...],
    n_slots: int,
    message: str,
) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        generate_blocks(arms, ratio, sizes, n_slots, SeededRandom(0))


def test_policy_hash_is_stable_and_ignores_size_order() -> None:
    assert describe_policy((6, 4), (1, 1)) == {
        "procedure": "permuted blocks",
        "ratio": [1, 1],
        "block_sizes": [4, 6],
        "generator": "secrets",
    }
    assert policy_hash((4, 6), (1, 1)) == policy_hash((6, 4), (1, 1))
    assert policy_hash((4, 6), (1, 1)) != policy_hash((4, 8), (1, 1))
    assert policy_hash((3, 6), (2, 1)) != policy_hash((3, 6), (1, 2))
    assert len(policy_hash((4, 6), (1, 1))) == 64


def test_policy_refuses_a_bad_policy() -> None:
    with pytest.raises(InvalidInput, match="not a multiple of 3"):
        policy_hash((4,), (2, 1))


@settings(max_examples=150, deadline=None)
@given(
    ratio=st.lists(st.integers(1, 3), min_size=2, max_size=4),
    multipliers=st.sets(st.integers(1, 4), min_size=1, max_size=3),
    n_slots=st.integers(1, 80),
    seed=st.integers(0, 2**32),
)
def test_any_valid_policy_gives_balanced_whole_blocks(
    ratio: list[int], multipliers: set[int], n_slots: int, seed: int
) -> None:
    arms = [f"ARM{i}" for i in range(len(ratio))]
    sizes = sorted(m * sum(ratio) for m in multipliers)
    blocks = generate_blocks(arms, ratio, sizes, n_slots, SeededRandom(seed))
    for block in blocks:
        assert block.size in sizes
        assert_balanced(block, arms, ratio)
    total = len(flatten(blocks))
    assert total >= n_slots > total - blocks[-1].size


def test_the_system_source_draws_every_value_below_the_bound_uniformly() -> None:
    from trialkit.domain.procedures import SystemRandomSource

    source = SystemRandomSource()
    for bound in (1, 2, 3, 5, 6, 20, 257):
        assert all(0 <= source.randbelow(bound) < bound for _ in range(200))
    draws = 12_000
    counts = [0] * 6
    for _ in range(draws):
        counts[source.randbelow(6)] += 1
    expected = draws / 6
    chi_square = sum((c - expected) ** 2 / expected for c in counts)
    assert chi_square < 30.86  # df=5, p=0.99999: a fair source fails once in 100,000 runs

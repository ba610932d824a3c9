"""Randomization procedures: permuted blocks with randomly chosen block sizes.

Permuted blocks keep the arms balanced to the allocation ratio at the end of
every block, which protects the comparison if a site or stratum stops early.
Fixed block sizes make the last allocations of a block predictable to anyone
who has seen the earlier ones, so each block's size is drawn at random from a
small set and the procedure itself (ratio, block sizes) is sealed with the
list: blinded roles never see it (SPIRIT 16a, allocation concealment).

Every random choice goes through a :class:`RandomSource`. Production uses the
operating system's CSPRNG (``secrets``); tests inject a seeded one so the
statistical checks are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

from trialkit.domain.errors import InvalidInput

PROCEDURE_NAME = "permuted blocks"
GENERATOR_NAME = "secrets"


class RandomSource(Protocol):
    """A source of uniform integers; the only randomness block generation uses."""

    def randbelow(self, n: int) -> int:
        """Return a uniform integer in ``[0, n)``."""
        ...


class SystemRandomSource:
    """The operating system's CSPRNG, the production source. Bytes are drawn from
    ``os.urandom`` a page at a time (one system call per 4 KiB, not one per draw) and turned
    into integers by rejection sampling, so every value is exactly uniform."""

    _PAGE = 4096

    def __init__(self) -> None:
        self._buffer = b""
        self._at = 0

    def randbelow(self, n: int) -> int:
        """Return a uniform integer in ``[0, n)`` from the OS CSPRNG."""
        if n <= 0:
            raise ValueError("randbelow needs a positive bound")
        bits = n.bit_length()
        k = (bits + 7) // 8
        shift = 8 * k - bits
        while True:
            at = self._at
            if at + k > len(self._buffer):
                self._buffer, at = os.urandom(self._PAGE), 0
            self._at = at + k
            value = int.from_bytes(self._buffer[at : at + k], "big") >> shift
            if value < n:
                return value


@dataclass(frozen=True)
class Block:
    """One permuted block: its size and the arm codes in allocation order."""

    size: int
    arms: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.arms) != self.size:
            raise ValueError(f"block of size {self.size} holds {len(self.arms)} arms")


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _ratio_text(ratio: Sequence[int]) -> str:
    return ":".join(str(r) for r in ratio)


# Permuted blocks exist to keep the arms balanced along a list; a block larger than this
# balances nothing and would only cost memory (a block of 2e9 took 16 s and then failed).
BLOCK_SIZE_MAX = 100


def _validate_ratio_and_sizes(ratio: Sequence[int], block_sizes: Sequence[int]) -> None:
    if not ratio:
        raise InvalidInput("the allocation ratio is empty")
    for part in ratio:
        if not _is_positive_int(part):
            raise InvalidInput(
                f"allocation ratio {_ratio_text(ratio)} must be made of positive whole numbers"
            )
    if not block_sizes:
        raise InvalidInput("at least one block size is needed")
    unit = sum(ratio)
    seen: set[int] = set()
    for size in block_sizes:
        if not _is_positive_int(size):
            raise InvalidInput(f"block size {size} must be a positive whole number")
        if size > BLOCK_SIZE_MAX:
            raise InvalidInput(f"block size {size} is larger than {BLOCK_SIZE_MAX}")
        if size % unit != 0:
            raise InvalidInput(
                f"block size {size} is not a multiple of {unit} (ratio {_ratio_text(ratio)})"
            )
        if size in seen:
            # A repeated size would silently weight the draw towards it.
            raise InvalidInput(f"block size {size} is listed more than once")
        seen.add(size)


def _validate_arms(arm_codes: Sequence[str], ratio: Sequence[int]) -> None:
    if len(arm_codes) < 2:
        raise InvalidInput("a randomization list needs at least two arms")
    if len(ratio) != len(arm_codes):
        raise InvalidInput(
            f"allocation ratio {_ratio_text(ratio)} has {len(ratio)} parts "
            f"but there are {len(arm_codes)} arms"
        )
    if any(not code for code in arm_codes):
        raise InvalidInput("an arm code is empty")
    if len(set(arm_codes)) != len(arm_codes):
        raise InvalidInput(f"arm codes repeat: {', '.join(arm_codes)}")


def _shuffle(items: list[str], rng: RandomSource) -> None:
    """Fisher–Yates in place: every permutation equally likely given a uniform ``rng``."""
    draw = rng.randbelow
    for i in range(len(items) - 1, 0, -1):
        j = draw(i + 1)
        items[i], items[j] = items[j], items[i]


def _unshuffled(arm_codes: Sequence[str], ratio: Sequence[int], size: int) -> list[str]:
    """A block's arms before shuffling: each arm its share of ``size``, in protocol order."""
    per_unit = size // sum(ratio)
    return [
        code for code, part in zip(arm_codes, ratio, strict=True) for _ in range(part * per_unit)
    ]


def _make_block(
    arm_codes: Sequence[str], ratio: Sequence[int], size: int, rng: RandomSource
) -> Block:
    arms = _unshuffled(arm_codes, ratio, size)
    _shuffle(arms, rng)
    return Block(size=size, arms=tuple(arms))


def pick(rng: RandomSource, weights: Sequence[Fraction]) -> int:
    """An index drawn with exactly the given probabilities (they sum to 1): one draw below
    the weights' common denominator."""
    denominator = 1
    for w in weights:
        denominator = denominator * w.denominator // math.gcd(denominator, w.denominator)
    draw = rng.randbelow(denominator)
    for i, w in enumerate(weights):
        draw -= int(w * denominator)
        if draw < 0:
            return i
    return len(weights) - 1


def generate_blocks(
    arm_codes: Sequence[str],
    ratio: Sequence[int],
    block_sizes: Sequence[int],
    n_slots: int,
    rng: RandomSource,
    weights: Sequence[Fraction] | None = None,
) -> list[Block]:
    """Generate whole permuted blocks until they hold at least ``n_slots`` allocations.

    Each block's size is drawn from ``block_sizes`` with ``weights`` (probabilities, in
    the same order; uniform by default); a block of size
    ``s`` holds arm ``i`` exactly ``s * ratio[i] / sum(ratio)`` times, in an
    order shuffled by Fisher–Yates. Only complete blocks are produced, so the
    list may be longer than ``n_slots`` (by less than the largest block size);
    cutting a block short would break the balance the procedure guarantees.
    Extending a list later is another call whose blocks are appended.
    """
    _validate_arms(arm_codes, ratio)
    _validate_ratio_and_sizes(ratio, block_sizes)
    if not _is_positive_int(n_slots):
        raise InvalidInput(f"the number of slots must be at least 1, not {n_slots}")
    unshuffled = {size: _unshuffled(arm_codes, ratio, size) for size in block_sizes}
    chances = tuple(weights) if weights else tuple(Fraction(1, len(block_sizes))
                                                   for _ in block_sizes)
    blocks: list[Block] = []
    total = 0
    while total < n_slots:
        size = block_sizes[pick(rng, chances)]
        arms = unshuffled[size].copy()
        _shuffle(arms, rng)
        blocks.append(Block(size=size, arms=tuple(arms)))
        total += size
    return blocks


def flatten(blocks: Iterable[Block]) -> list[str]:
    """The arm sequence of the blocks, in allocation order."""
    return [arm for block in blocks for arm in block.arms]


def describe_policy(block_sizes: Sequence[int], ratio: Sequence[int]) -> dict[str, Any]:
    """The procedure as a plain dict: what is sealed with the list, never shown blinded.

    Block sizes are a set, so they are sorted; the ratio keeps the protocol's arm order.
    """
    _validate_ratio_and_sizes(ratio, block_sizes)
    return {
        "procedure": PROCEDURE_NAME,
        "ratio": list(ratio),
        "block_sizes": sorted(block_sizes),
        "generator": GENERATOR_NAME,
    }


def policy_hash(block_sizes: Sequence[int], ratio: Sequence[int]) -> str:
    """SHA-256 hex of the canonical JSON of :func:`describe_policy`, for the signed manifest."""
    canonical = json.dumps(
        describe_policy(block_sizes, ratio), sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()

"""The QR symbol of a label code: a minimal QR encoder for the one symbol shape a label code
always fits, version 1 (21 x 21 modules), error correction level M, alphanumeric (or byte)
mode, mask 0.

Encoding just that, as ISO/IEC 18004 lays it out, takes a few dozen microseconds; a general
encoder (segno) takes longer than the rest of the label. The unit tests check every symbol
against segno's for the same settings. ``labels`` draws the symbol on the label."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

QR_ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_QR_N = 21
_QR_DATA_CODEWORDS, _QR_EC_CODEWORDS = 16, 10  # version 1-M: one block
_QR_FORMAT_BITS = 0b101010000010010  # level M, mask 0, BCH-coded and masked (0x5412)


def _gf_mul(x: int, y: int) -> int:
    """Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x^2 + 1 (0x11D)."""
    z = 0
    for i in reversed(range(8)):
        z = (z << 1) ^ ((z >> 7) * 0x11D)
        z ^= ((y >> i) & 1) * x
    return z


@lru_cache(maxsize=1)
def _rs_tables() -> tuple[tuple[int, ...], ...]:
    """For each coefficient of the Reed-Solomon generator polynomial of degree 10 (highest
    dropped), its products with every byte: the remainder is then table look-ups."""
    divisor = [0] * (_QR_EC_CODEWORDS - 1) + [1]
    root = 1
    for _ in range(_QR_EC_CODEWORDS):
        for j in range(len(divisor)):
            divisor[j] = _gf_mul(divisor[j], root)
            if j + 1 < len(divisor):
                divisor[j] ^= divisor[j + 1]
        root = _gf_mul(root, 0x02)
    return tuple(tuple(_gf_mul(c, b) for b in range(256)) for c in divisor)


def _bits(value: int, width: int) -> list[int]:
    return [(value >> j) & 1 for j in reversed(range(width))]


def _qr_codewords(text: str) -> list[int]:
    """Data and error-correction codewords of ``text``: alphanumeric mode when every
    character allows it, else byte mode (a label code's check character may be ~ or =)."""
    bits: list[int] = []
    if all(ch in QR_ALPHANUMERIC for ch in text) and len(text) <= 20:
        bits = [0, 0, 1, 0] + _bits(len(text), 9)
        for i in range(0, len(text), 2):
            pair = [QR_ALPHANUMERIC.index(ch) for ch in text[i : i + 2]]
            bits += _bits(pair[0] * 45 + pair[1], 11) if len(pair) == 2 else _bits(pair[0], 6)
    else:
        raw = text.encode("latin-1", "strict") if len(text) <= 14 else b""
        if not raw:
            raise ValueError(f"{text!r} does not fit a version 1-M QR symbol")
        bits = [0, 1, 0, 0] + _bits(len(raw), 8)
        for byte in raw:
            bits += _bits(byte, 8)
    capacity = _QR_DATA_CODEWORDS * 8
    bits += [0] * min(4, capacity - len(bits))  # terminator
    bits += [0] * (-len(bits) % 8)
    data = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    data += [(0xEC, 0x11)[i % 2] for i in range(_QR_DATA_CODEWORDS - len(data))]
    remainder = [0] * _QR_EC_CODEWORDS
    tables = _rs_tables()
    for byte in data:
        factor = byte ^ remainder.pop(0)
        remainder.append(0)
        for i, products in enumerate(tables):
            remainder[i] ^= products[factor]
    return data + remainder


@lru_cache(maxsize=1)
def _qr_template() -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[bool, ...], ...]]:
    """The function patterns of a version 1-M, mask 0 symbol (finders, separators, timing,
    format information, dark module) and which modules they take."""
    n = _QR_N
    dark = [[0] * n for _ in range(n)]
    taken = [[False] * n for _ in range(n)]

    def put(x: int, y: int, value: int) -> None:
        dark[y][x], taken[y][x] = value, True

    for fx, fy in ((3, 3), (n - 4, 3), (3, n - 4)):  # finder centres
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                x, y = fx + dx, fy + dy
                if 0 <= x < n and 0 <= y < n:
                    ring = max(abs(dx), abs(dy))
                    put(x, y, 1 if ring not in (2, 4) else 0)
    for i in range(8, n - 8):
        put(6, i, 1 - i % 2)
        put(i, 6, 1 - i % 2)
    bit = [(_QR_FORMAT_BITS >> i) & 1 for i in range(15)]
    for i in range(6):
        put(8, i, bit[i])
    put(8, 7, bit[6])
    put(8, 8, bit[7])
    put(7, 8, bit[8])
    for i in range(9, 15):
        put(14 - i, 8, bit[i])
    for i in range(8):
        put(n - 1 - i, 8, bit[i])
    for i in range(8, 15):
        put(8, n - 15 + i, bit[i])
    put(8, n - 8, 1)  # the dark module
    return tuple(map(tuple, dark)), tuple(map(tuple, taken))


@lru_cache(maxsize=1)
def _qr_data_positions() -> tuple[tuple[int, int, int], ...]:
    """Where the data bits go, in order: (row, column, mask 0 bit), in two-module columns
    from the right, snaking up and down, around the function patterns."""
    _template, taken = _qr_template()
    n = _QR_N
    order: list[tuple[int, int, int]] = []
    right = n - 1
    while right >= 1:
        if right == 6:
            right = 5  # skip the vertical timing pattern
        upward = (right + 1) & 2 == 0
        for vert in range(n):
            y = n - 1 - vert if upward else vert
            for x in (right, right - 1):
                if not taken[y][x]:
                    order.append((y, x, 1 if (x + y) % 2 == 0 else 0))
        right -= 2
    return tuple(order)


def qr_matrix(label_code: str) -> Sequence[Sequence[int]]:
    """The QR symbol of a label code: rows of modules (1 dark, 0 light), no quiet zone."""
    template, _taken = _qr_template()
    matrix = [list(row) for row in template]
    codewords = _qr_codewords(label_code)
    bits = [(byte >> (7 - j)) & 1 for byte in codewords for j in range(8)]
    bits += [0] * (len(_qr_data_positions()) - len(bits))  # remainder bits
    for bit, (y, x, mask) in zip(bits, _qr_data_positions(), strict=True):
        matrix[y][x] = bit ^ mask
    return matrix

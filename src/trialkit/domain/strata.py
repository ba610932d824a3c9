"""Strata: one allocation list per combination of site and stratification levels."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import product

from trialkit.domain.errors import InvalidInput
from trialkit.domain.protocol import Protocol


@dataclass(frozen=True)
class Stratum:
    """A stratum code such as ``TWH-CM`` and the levels it stands for."""

    code: str
    site: str | None  # None when the protocol does not stratify by site
    levels: tuple[tuple[str, str], ...]  # (factor id, level code) in protocol order

    def describe(self, protocol: Protocol) -> str:
        site = protocol.site(self.site) if self.site else None
        names = [site.name if site else self.site] if self.site else []
        for factor in protocol.stratification:
            level = dict(self.levels).get(factor.id)
            names += [lv.name for lv in factor.levels if lv.code == level]
        return " / ".join(names)


def stratum_code(site: str | None, levels: Mapping[str, str], protocol: Protocol) -> str:
    parts = [site] if site and protocol.allocation.stratify_by_site else []
    parts += [levels[f.id] for f in protocol.stratification]
    return "-".join(parts) or "ALL"


def all_strata(protocol: Protocol) -> list[Stratum]:
    """Every stratum of the protocol, in a stable order (site, then levels as listed)."""
    sites: tuple[str | None, ...] = (
        tuple(protocol.site_codes) if protocol.allocation.stratify_by_site else (None,)
    )
    level_sets = [[(f.id, lv.code) for lv in f.levels] for f in protocol.stratification]
    strata: list[Stratum] = []
    for site in sites:
        for combo in product(*level_sets):
            levels = dict(combo)
            strata.append(Stratum(stratum_code(site, levels, protocol), site, tuple(combo)))
    return strata


def parse_factor_values(values: Mapping[str, str], protocol: Protocol) -> dict[str, str]:
    """Check a participant's stratification answers (``headache_type=CM``) against the
    protocol: every factor answered once, with one of its levels."""
    known = {f.id: f for f in protocol.stratification}
    for key in values:
        if key not in known:
            raise InvalidInput(
                f"unknown stratification factor {key!r}: this trial has {', '.join(known)}"
            )
    result: dict[str, str] = {}
    for fid, factor in known.items():
        if fid not in values:
            levels = ", ".join(lv.code for lv in factor.levels)
            raise InvalidInput(f"missing stratification factor {fid} (one of {levels})")
        code = values[fid].strip().upper()
        if code not in {lv.code for lv in factor.levels}:
            levels = ", ".join(f"{lv.code} ({lv.name})" for lv in factor.levels)
            raise InvalidInput(f"{fid}: unknown level {values[fid]!r}; choose {levels}")
        result[fid] = code
    return result

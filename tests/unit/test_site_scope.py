"""The one site-scope rule (``domain.roles.site_scope``), from the product's words: a
coordinator works at their own sites only (none if none is given); a pharmacist may work at
named sites, or centrally for every site; admins, investigators and monitors see every
site."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trialkit.domain.roles import Role, site_scope, works_at

SITES = st.frozensets(st.sampled_from(["TWH", "SHS", "MGH"]))


@given(SITES, st.sampled_from(["TWH", "SHS", "MGH"]))
def test_a_coordinator_works_at_their_own_sites_only(sites: frozenset[str], site: str) -> None:
    assert site_scope(Role.COORDINATOR, sites) == sites
    assert works_at(Role.COORDINATOR, sites, site) == (site in sites)


@given(SITES, st.sampled_from(["TWH", "SHS", "MGH"]))
def test_a_pharmacist_with_sites_is_bound_to_them_and_without_serves_all(
        sites: frozenset[str], site: str) -> None:
    assert site_scope(Role.PHARMACIST, sites) == (sites or None)
    assert works_at(Role.PHARMACIST, sites, site) == (not sites or site in sites)


@pytest.mark.parametrize("role", [Role.ADMIN, Role.INVESTIGATOR, Role.MONITOR])
def test_other_roles_see_every_site(role: Role) -> None:
    assert site_scope(role, ()) is None
    assert works_at(role, (), "SHS")

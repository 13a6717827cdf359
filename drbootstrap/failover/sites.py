"""The spec's sites: each a provider block the environment can run on. The main `provider:` is the
site named `primary`; `sites:` adds the others. A site is a provider instance, with its own files."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drbootstrap.errors import DrbError
from drbootstrap.executor.events import Event
from drbootstrap.exit_status import ExitStatus
from drbootstrap.paths import PRIMARY_SITE, EnvironmentPaths
from drbootstrap.providers.base import Provider
from drbootstrap.spec.models import EnvironmentSpec, ProviderSpec


class UnknownSite(DrbError):
    """`--to` names no site of the spec."""

    exit_status = ExitStatus.USAGE


@dataclass(frozen=True)
class Site:
    """One place the environment can run: its name and its provider block."""

    name: str
    provider: ProviderSpec


def sites_of(spec: EnvironmentSpec) -> dict[str, Site]:
    """Every site by name, the primary (the main `provider:`) first."""
    found = {PRIMARY_SITE: Site(PRIMARY_SITE, spec.provider)}
    for site in spec.sites:
        found[site.name] = Site(site.name, site.provider)
    return found


def site_named(spec: EnvironmentSpec, name: str, option: str = "--to") -> Site:
    """The site called `name`, or UnknownSite naming the ones there are."""
    sites = sites_of(spec)
    if name not in sites:
        where = f" in {spec.source_path}" if spec.source_path else ""
        raise UnknownSite(f"{option} {name}: no site of that name{where}",
                          hint=f"use one of: {', '.join(sites)} (add it under `sites:` first)")
    return sites[name]


def spec_at(spec: EnvironmentSpec, site: Site) -> EnvironmentSpec:
    """The same environment with `site`'s provider block: what `up` runs there."""
    copy = spec.model_copy(update={"provider": site.provider})
    copy._source_path = spec.source_path
    return copy


def paths_at(spec: EnvironmentSpec, state_dir: Path, site: Site) -> EnvironmentPaths:
    return EnvironmentPaths(state_dir, spec.environment, site.name)


def provider_at(spec: EnvironmentSpec, state_dir: Path, site: Site,
                emit: Callable[[Event], None] = lambda e: None) -> Provider:
    """The site's provider, working for the environment as that site's cloud knows it."""
    from drbootstrap.executor.build import provider_for

    return provider_for(spec_at(spec, site), paths_at(spec, state_dir, site), emit)


def at_site(spec: EnvironmentSpec, state_dir: Path, site_name: str | None) -> tuple[EnvironmentSpec, EnvironmentPaths]:
    """`up`, `status` and `down --site SITE`: the spec with that site's provider and the site's files
    (the primary's when `site_name` is None)."""
    site = site_named(spec, site_name or PRIMARY_SITE, "--site")
    return spec_at(spec, site), paths_at(spec, state_dir, site)

"""What the audited cloud must match: the EU allow-list and the environment's needs."""

from __future__ import annotations

from dataclasses import dataclass

from citadelle.environment import Environment
from citadelle.environment.settings import host_covered
from citadelle.errors import CitadelleError


@dataclass(frozen=True)
class AllowList:
    """Endpoint hosts (exact, or under a domain, or inside a network) and region names."""

    domains: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    availability_zones: tuple[str, ...] = ()

    def allows_host(self, host: str) -> bool:
        return host_covered(host, self.domains, self.networks)

    def allows_region(self, region: str) -> bool:
        return region in self.regions

    def with_loopback(self) -> AllowList:
        """The lab's own cloud answers on 127.0.0.1 only."""
        return AllowList(
            domains=self.domains,
            networks=(*self.networks, "127.0.0.0/8"),
            regions=self.regions,
            availability_zones=self.availability_zones,
        )


@dataclass(frozen=True)
class Target:
    """What one environment expects of its cloud."""

    allow: AllowList
    region: str | None = None
    image: str | None = None


def from_environment(env: str) -> Target:
    """``env``'s allow-list (providers' domains, networks, regions), region, zones and image."""
    try:
        settings = Environment.load(env).settings
    except CitadelleError as err:
        raise CitadelleError(f"environment {env}: {err.message}") from None
    providers = settings.sovereignty.providers
    allow = AllowList(
        domains=tuple(d for p in providers for d in p.domains),
        networks=tuple(n for p in providers for n in p.networks),
        regions=tuple(sorted(settings.sovereignty.allowed_regions())),
        availability_zones=tuple(settings.openstack.availability_zones),
    )
    return Target(allow=allow, region=settings.openstack.region, image=settings.compute.image)

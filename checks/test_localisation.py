"""Data localisation on the host: every outside endpoint is an in-region one from config.

SecNumCloud 3.2 19.2 (data and technical data stay in the EU) and 19.6 (no technical means
for a non-EU party): time, name resolution, packages and logs only from the endpoints of
``citadelle:sovereignty`` that the inventory hands to the hosts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from checks.target import Target, key_values


def _host_of(url: str) -> str:
    return (urlsplit(url if "://" in url else f"//{url}").hostname or "").lower()


def _chrony_sources(target: Target) -> list[str]:
    conf = target.host.file(target.vars["bp028_time_config_file"]).content_string
    return [line.split()[1] for line in conf.splitlines()
            if line.split()[:1] in (["server"], ["pool"], ["peer"])]


def _apt_hosts(target: Target) -> set[str]:
    text = target.host.check_output(
        "cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list "
        "/etc/apt/sources.list.d/*.sources 2>/dev/null || true")
    urls: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if fields[:1] == ["URIs:"]:
            urls += fields[1:]
        elif fields[:1] in (["deb"], ["deb-src"]):
            urls += [f for f in fields[1:] if "://" in f][:1]
    return {_host_of(u) for u in urls}


@pytest.mark.snc("19.2", "19.6", "12.8")
def test_ntp_servers_are_the_in_region_ones(target: Target) -> None:
    sources = _chrony_sources(target)
    assert sources, "no NTP source configured"
    outside = sorted(set(sources) - set(target.vars["citadelle_ntp_servers"]))
    assert not outside, f"NTP sources outside the allow-list: {outside}"


@pytest.mark.snc("19.2", "19.6")
def test_dns_resolvers_are_in_region(target: Target) -> None:
    resolv = target.host.file("/etc/resolv.conf").content_string
    servers = [line.split()[1] for line in resolv.splitlines()
               if line.split()[:1] == ["nameserver"]]
    assert servers, "no nameserver in /etc/resolv.conf"
    outside = sorted(set(servers) - set(target.vars["citadelle_dns_resolvers"]))
    assert not outside, f"resolvers outside the allow-list: {outside}"


@pytest.mark.snc("19.2", "19.6", "12.10")
@pytest.mark.bp028("R59")
def test_package_sources_are_in_region_mirrors(target: Target) -> None:
    allowed = {_host_of(u) for u in target.vars["citadelle_package_mirrors"]}
    hosts = _apt_hosts(target)
    assert hosts, "no APT source configured"
    assert not hosts - allowed, f"APT sources outside the allow-list: {sorted(hosts - allowed)}"


@pytest.mark.snc("19.2", "19.6", "12.7")
@pytest.mark.bp028("R71")
def test_logs_go_to_the_in_region_collector(target: Target) -> None:
    conf = key_values(target.host.file("/etc/systemd/journal-upload.conf").content_string, "=")
    allowed = {_host_of(u) for u in target.vars["citadelle_log_collectors"]}
    assert _host_of(conf.get("url", "")) in allowed, f"journal upload URL {conf.get('url')!r}"

"""Reverse proxies whose ``X-Forwarded-*`` headers are believed (``VOXLINE_TRUSTED_PROXIES``)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def proxy_networks(spec: str) -> list[Network]:
    """``VOXLINE_TRUSTED_PROXIES``: comma-separated addresses or networks (``10.0.0.0/8,::1``)."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()]


def is_trusted(peer: str | None, proxies: Sequence[Network]) -> bool:
    if not peer or not proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in proxies)


def client_address(peer: str | None, headers: Mapping[str, str], proxies: Sequence[Network]) -> str:
    """The client's address: the connection's peer, or from a trusted proxy the first address in
    its ``X-Forwarded-For`` (behind a proxy every connection's peer is the proxy)."""
    if is_trusted(peer, proxies):
        forwarded = headers.get("x-forwarded-for", "").split(",")[0].strip()
        if forwarded:
            return forwarded[:64]
    return peer or ""

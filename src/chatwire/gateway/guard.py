"""Which addresses a user-set upstream URL may reach (a custom model's base URL, a user's
Azure endpoint): public ones, unless the operator allows more.

The rule is applied to the address actually connected to, after DNS, so a name that
resolves (or rebinds) to a private address does not pass: ``GuardedResolver`` filters what a
name resolves to, and ``AddressRules.check_literal`` the IP literals aiohttp connects to
without asking a resolver. Loopback, private, link-local (169.254.169.254, the cloud
metadata service), CGNAT and reserved ranges are reached only when the operator names them
(``CHATWIRE_UPSTREAM_ALLOW``: CIDRs or host names); ``CHATWIRE_UPSTREAM_DENY`` refuses
addresses or names whatever else says. Operator-set base URLs do not go through this.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from aiohttp import DefaultResolver
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.helpers import is_ip_address

from chatwire.errors import UpstreamNotAllowed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# NAT64's well-known prefix carries an IPv4 address in its last 32 bits.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*")


@dataclass(frozen=True, slots=True)
class AddressRules:
    allow_networks: tuple[IPNetwork, ...] = ()
    allow_names: frozenset[str] = frozenset()
    deny_networks: tuple[IPNetwork, ...] = ()
    deny_names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, allow: str, deny: str) -> AddressRules:
        """From the settings' comma-separated CIDRs, addresses and host names; a malformed
        entry stops the start (ValueError) rather than silently allowing less or more."""
        allow_networks, allow_names = _entries(allow, "CHATWIRE_UPSTREAM_ALLOW")
        deny_networks, deny_names = _entries(deny, "CHATWIRE_UPSTREAM_DENY")
        return cls(allow_networks, allow_names, deny_networks, deny_names)

    def permits(self, host: str, address: IPAddress) -> bool:
        """Whether ``host`` (as written in the URL) may be reached at ``address``."""
        name = _name(host)
        address = _unwrapped(address)
        if name in self.deny_names or any(address in net for net in self.deny_networks):
            return False
        if name in self.allow_names or any(address in net for net in self.allow_networks):
            return True
        return _public(address)

    def check_literal(self, host: str) -> None:
        """An IP literal host (aiohttp connects to it without a resolver) must be permitted;
        a form aiohttp takes for an address but Python does not read as one (``127.1``,
        ``2130706433``) is refused, as some resolvers would map it onto loopback."""
        if not is_ip_address(host):
            return
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            raise _refused(host) from None
        if not self.permits(host, address):
            raise _refused(host)


class GuardedResolver(AbstractResolver):
    """The default resolver, keeping only the addresses ``rules`` permit for the name: a
    name left with none is refused (403), not tried elsewhere."""

    def __init__(self, rules: AddressRules, resolver: AbstractResolver | None = None) -> None:
        self._rules = rules
        self._resolver = resolver if resolver is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        kept = [r for r in found if self._rules.permits(host, ipaddress.ip_address(r["host"]))]
        if not kept:
            raise _refused(host)
        return kept

    async def close(self) -> None:
        await self._resolver.close()


def _refused(host: str) -> UpstreamNotAllowed:
    return UpstreamNotAllowed(
        f"The URL's host '{host[:100]}' is not an address chatwire may call: base URLs and "
        "endpoints set by users reach only public addresses, unless the operator allows "
        "more (CHATWIRE_UPSTREAM_ALLOW)."
    )


def _entries(value: str, variable: str) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    networks: list[IPNetwork] = []
    names: set[str] = set()
    for entry in (part.strip() for part in value.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            if not _HOST_NAME.fullmatch(_name(entry)):
                raise ValueError(
                    f"{variable}: '{entry}' is neither a CIDR, an address nor a host name"
                ) from None
            names.add(_name(entry))
    return tuple(networks), frozenset(names)


def _name(host: str) -> str:
    return host.rstrip(".").lower()


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one stands for (``::ffff:127.0.0.1``, NAT64), if any."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address in _NAT64:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def _public(address: IPAddress) -> bool:
    if not address.is_global or address.is_multicast:
        return False
    return not (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)

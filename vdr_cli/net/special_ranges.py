"""IANA's special-purpose address registries, as the URL policy reads them.

From the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and
the RFCs each entry names), plus cloud addresses that are not in them. Python's
`is_global` misses some entries (192.0.0.8, 192.0.0.192 in 192.0.0.0/24, 3fff::/20,
5f00::/16, 64:ff9b:1::/48, ...), so the policy checks this table as well.
Entries IANA marks globally reachable (anycast services such as 192.0.0.9 or
AS112) are listed too: nothing a model needs to read lives there.

The two translation prefixes, 6to4 (2002::/16) and NAT64 (64:ff9b::/96), are
not here: the policy judges the IPv4 address they carry instead.
"""

from __future__ import annotations

import ipaddress

_IPV4 = [
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private use"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link local"),
    ("172.16.0.0/12", "private use"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation (TEST-NET-1)"),
    ("192.31.196.0/24", "AS112-v4"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
    ("192.168.0.0/16", "private use"),
    ("192.175.48.0/24", "direct delegation AS112 service"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("255.255.255.255/32", "limited broadcast"),
]
_IPV6 = [
    ("::1/128", "loopback"),
    ("::/128", "unspecified"),
    ("::ffff:0:0/96", "IPv4-mapped"),
    ("64:ff9b:1::/48", "IPv4-IPv6 local-use translation"),
    ("100::/64", "discard-only"),
    ("100:0:0:1::/64", "dummy IPv6 prefix"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("2620:4f:8000::/48", "direct delegation AS112 service"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6) SIDs"),
    ("fc00::/7", "unique local"),
    ("fe80::/10", "link-local unicast"),
    ("fec0::/10", "deprecated site-local"),
    ("ff00::/8", "multicast"),
]

SPECIAL_PURPOSE: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = [
    (ipaddress.ip_network(net), name) for net, name in _IPV4 + _IPV6
]

# Cloud addresses outside the registries that answer with credentials or host control.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
    "169.254.170.2",  # AWS ECS task metadata
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",  # Azure WireServer (host agent, health probes)
    "fd00:ec2::254",  # AWS over IPv6
))


def special_purpose(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """The registry entry `ip` falls in, or None."""
    for net, name in SPECIAL_PURPOSE:
        if ip.version == net.version and ip in net:
            return name
    return None

"""Where integrations may connect: checked on the resolved address, which is then pinned.

A form that users point anywhere can reach the cloud's metadata service or the
app's own database and broker from inside the worker. So the worker resolves
the host itself, refuses blocked addresses, and connects to that very address
(libpq's ``hostaddr``), so a second DNS answer cannot swap it (DNS rebinding).

The app's own services are refused under every address that reaches them: if
one listens on this host, any address of this host on its port is refused
(loopback, ``::``, ``0.0.0.0``, each interface's address, and names that
resolve to them), not only the one in its URL.
"""
from __future__ import annotations

import ipaddress
import socket
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings

from .kinds.base import StageError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
THIS_HOST = "this host"

# Link-local (169.254.169.254 is AWS/GCP/Azure metadata), AWS's IPv6 metadata,
# Alibaba's metadata, and the unspecified addresses, which reach this host's services.
ALWAYS_BLOCKED = [ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8", "::/128",
)]


def lookup_addresses(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to, IPv4-mapped IPv6 ones as IPv4, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else "not a valid host name"
        raise StageError("connection", f"could not resolve host {host!r}: {reason}") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        if address not in addresses:
            addresses.append(address)
    return addresses


def check(host: str, port: int) -> str:
    """The address to connect to for ``host``, or StageError("connection") if it is not allowed."""
    address = lookup_addresses(host, port)[0]
    for network in ALWAYS_BLOCKED:
        if address in network:
            raise StageError("connection", f"{host} ({address}) is a blocked address (cloud metadata, "
                                           "link-local or unspecified)")
    endpoints = _app_endpoints()
    own = (address, port) in endpoints or ((THIS_HOST, port) in endpoints and is_this_host(address))
    if own and not settings.INTEGRATION_ALLOW_APP_SERVICES:
        raise StageError("connection", f"{host}:{port} is credtool's own database or broker, which integrations "
                                       "may not reach")
    allowed = _allow_list()
    if allowed is not None and not any(address in network for network in allowed):
        raise StageError("connection", f"{host} ({address}) is not in CREDTOOL_INTEGRATION_NETWORKS")
    return str(address)


@cache
def is_this_host(address: Address) -> bool:
    """Whether ``address`` reaches this machine: loopback, unspecified, or one of its interfaces'
    addresses (a socket can bind to exactly those)."""
    if address.is_loopback or address.is_unspecified:
        return True
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((str(address), 0))
        return True
    except OSError:
        return False


@cache
def _app_endpoints() -> frozenset[tuple[object, int]]:
    """(address, port) of the app's own database and broker; (THIS_HOST, port) for those on this host."""
    endpoints: set[tuple[object, int]] = set()
    database = settings.DATABASES["default"]
    candidates: list[tuple[str, int]] = []
    if database.get("HOST"):
        candidates.append((database["HOST"], int(database.get("PORT") or 5432)))
    broker = urlsplit(settings.CELERY_BROKER_URL)
    if broker.hostname:
        candidates.append((broker.hostname, broker.port or {"redis": 6379, "rediss": 6379, "amqp": 5672,
                                                            "amqps": 5671}.get(broker.scheme, 0)))
    for host, port in candidates:
        try:
            addresses = lookup_addresses(host, port)
        except StageError:
            continue
        for address in addresses:
            endpoints.add((THIS_HOST, port) if is_this_host(address) else (address, port))
    return frozenset(endpoints)


@cache
def _allow_list() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    networks = getattr(settings, "INTEGRATION_NETWORKS", [])
    return [ipaddress.ip_network(n, strict=False) for n in networks] if networks else None

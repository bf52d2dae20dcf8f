"""Where integrations may connect: checked on the resolved address, which is then pinned.

A form that users point anywhere can reach the cloud's metadata service or the
app's own database and broker from inside the worker. So the worker resolves
the host itself, refuses blocked addresses, and connects to that very address
(libpq's ``hostaddr``), so a second DNS answer cannot swap it (DNS rebinding).
"""
from __future__ import annotations

import ipaddress
import socket
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings

from .kinds.base import StageError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Link-local (169.254.169.254 is AWS/GCP/Azure metadata), AWS's IPv6 metadata,
# Alibaba's metadata, and "this host" addresses that reach local services.
ALWAYS_BLOCKED = [ipaddress.ip_network(n) for n in (
    "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32", "0.0.0.0/8",
)]


def lookup_address(host: str, port: int) -> Address:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise StageError("connection", f"could not resolve host {host!r}: {exc.strerror}") from None
    return ipaddress.ip_address(infos[0][4][0])


def check(host: str, port: int) -> str:
    """The address to connect to for ``host``, or StageError("connection") if it is not allowed."""
    address = lookup_address(host, port)
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    for network in ALWAYS_BLOCKED:
        if address in network:
            raise StageError("connection", f"{host} ({address}) is a blocked address (cloud metadata or link-local)")
    own = (address, port) in _app_endpoints() or (address.is_loopback and ("loopback", port) in _app_endpoints())
    if own and not settings.INTEGRATION_ALLOW_APP_SERVICES:
        raise StageError("connection", f"{host}:{port} is credtool's own database or broker, which integrations "
                                       "may not reach")
    allowed = _allow_list()
    if allowed is not None and not any(address in network for network in allowed):
        raise StageError("connection", f"{host} ({address}) is not in CREDTOOL_INTEGRATION_NETWORKS")
    return str(address)


@cache
def _app_endpoints() -> frozenset[tuple[object, int]]:
    """(address, port) of the app's own database and broker; loopback counts as one host."""
    endpoints: set[tuple[object, int]] = set()
    database = settings.DATABASES["default"]
    candidates: list[tuple[str, int]] = []
    if database.get("HOST"):
        candidates.append((database["HOST"], int(database.get("PORT") or 5432)))
    broker = urlsplit(settings.CELERY_BROKER_URL)
    if broker.hostname:
        candidates.append((broker.hostname, broker.port or {"redis": 6379, "amqp": 5672}.get(broker.scheme, 0)))
    for host, port in candidates:
        try:
            address = lookup_address(host, port)
        except StageError:
            continue
        endpoints.add((address, port))
        if address.is_loopback:
            endpoints.add(("loopback", port))
    return frozenset(endpoints)


@cache
def _allow_list() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network] | None:
    networks = getattr(settings, "INTEGRATION_NETWORKS", [])
    return [ipaddress.ip_network(n, strict=False) for n in networks] if networks else None

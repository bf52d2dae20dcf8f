"""Checks every database kind makes of a host and a port before connecting, and the address it
then connects to (no driver here)."""
from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from .. import destinations
from .base import StageError

if TYPE_CHECKING:
    from .base import Kind


def host_and_port_errors(values: dict[str, Any]) -> dict[str, str]:
    """{field: message} for a host that is not a plain host name or address, or a port out of range."""
    errors: dict[str, str] = {}
    host = str(values.get("host", ""))
    # A host starting with "/" is a Unix socket path to libpq, i.e. a file on the worker.
    if host.startswith("/") or any(c in host for c in " =\\'\"\n"):
        errors["host"] = "Enter a host name or IP address (no paths, spaces or quotes)."
    else:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9_.\-]+|\[[0-9A-Fa-f:]+\]", host or "x"):
                errors["host"] = "Enter a host name or IP address."
    port = values.get("port")
    if isinstance(port, int) and not 1 <= port <= 65535:
        errors["port"] = "Enter a port between 1 and 65535."
    return errors


def port_number(value: Any, default: int) -> int:
    """The port as a number; ValueError with a sentence for anything else."""
    try:
        port = int(value or default)
    except (TypeError, ValueError):
        raise ValueError(f"port {value!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    return port


def checked_address(kind: Kind, values: dict[str, Any], *, default_port: int,
                    required: tuple[str, ...]) -> tuple[str, int]:
    """The address and port to connect to, once the host, port and ``required`` fields pass and
    the destination is allowed; the address is the resolved one, so DNS cannot swap it later."""
    errors = kind.validate(values)
    if errors:
        raise StageError("connection", "; ".join(errors.values()))
    try:
        port = port_number(values.get("port"), default_port)
    except ValueError as exc:
        raise StageError("connection", str(exc)) from None
    for name in required:
        if not values.get(name):
            raise StageError("connection", f"{kind.field(name).label} is empty")
    return destinations.check(str(values["host"]), port), port

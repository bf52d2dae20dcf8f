"""Checks every database kind makes of a host and a port before connecting (pure, no driver)."""
from __future__ import annotations

import ipaddress
import re
from typing import Any


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

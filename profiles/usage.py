"""What uses a profile: a profile may be deleted only when no configuration serves it."""
from __future__ import annotations

from .models import Profile


def configurations_using(profile: Profile) -> list[str]:
    """The configurations that serve ``profile``, as "Integration (configuration)" for a message."""
    links = profile.configuration_links.select_related("integration", "configuration").order_by("integration__name")
    return [f"{link.integration.name} ({link.configuration.label})" for link in links]

"""Who may see and use which integration: the object-level half of the roles."""
from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from integrations.models import Integration


def can_configure(user: AbstractBaseUser) -> bool:
    return user.has_perm("integrations.change_integration")


def integrations_for(user: AbstractBaseUser) -> QuerySet[Integration]:
    """Builders and Admins see every integration; Runners those shared with them."""
    if can_configure(user):
        return Integration.objects.all()
    if user.has_perm("integrations.view_integration"):
        return Integration.objects.filter(shared_with=user)
    return Integration.objects.none()

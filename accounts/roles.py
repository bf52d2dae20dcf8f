"""The three roles, as Django groups with permissions (kept in step after every migrate).

- Admin: everything, including users, roles and the audit log.
- Builder: creates and edits integrations and workflows, and runs them.
- Runner: runs queries on the integrations shared with them, and workflows;
  sees none of an integration's configuration.
Superusers are Admins whatever their groups.
"""
from __future__ import annotations

from django.contrib.auth.models import Group, Permission

ROLES: dict[str, list[str]] = {
    "Admin": ["*"],
    "Builder": [
        "integrations.add_integration", "integrations.change_integration", "integrations.delete_integration",
        "integrations.view_integration", "integrations.run_query",
        "workflows.add_workflow", "workflows.change_workflow", "workflows.delete_workflow",
        "workflows.view_workflow", "workflows.run_workflow",
    ],
    "Runner": ["integrations.view_integration", "integrations.run_query",
               "workflows.view_workflow", "workflows.run_workflow"],
}


def sync_roles(**kwargs: object) -> None:
    for name, codenames in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        if codenames == ["*"]:
            permissions = Permission.objects.all()
        else:
            permissions = []
            for name in codenames:
                app_label, codename = name.split(".")
                try:
                    permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
                except Permission.DoesNotExist:
                    raise LookupError(f"role {group.name}: no permission {name}") from None
        group.permissions.set(permissions)


def admins_manage_users(sender: object, instance: object, action: str, reverse: bool, **kwargs: object) -> None:
    """Admins manage users and roles in Django's admin (/admin/), which needs is_staff:
    joining or leaving the Admin group sets it."""
    if action not in ("post_add", "post_remove", "post_clear") or reverse:
        return
    is_admin = instance.groups.filter(name="Admin").exists()
    if instance.is_staff != is_admin and not instance.is_superuser:
        instance.is_staff = is_admin
        instance.save(update_fields=["is_staff"])

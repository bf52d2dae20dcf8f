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

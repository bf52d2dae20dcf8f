from django.apps import AppConfig
from django.db.models.signals import m2m_changed, post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from .roles import admins_manage_users, sync_roles

        post_migrate.connect(sync_roles, sender=self, dispatch_uid="credtool-sync-roles")
        m2m_changed.connect(admins_manage_users, sender=get_user_model().groups.through,
                            dispatch_uid="credtool-admins-are-staff")

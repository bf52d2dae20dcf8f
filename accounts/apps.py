from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from .roles import sync_roles

        post_migrate.connect(sync_roles, sender=self, dispatch_uid="credtool-sync-roles")

from django.apps import AppConfig
from django.db.models.signals import pre_delete


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Background runs"

    def ready(self) -> None:
        from . import lifecycle

        # Runs keep their rows when their profile goes (the profile becomes NULL); a queued
        # one must not then run under the default profile, against another environment.
        pre_delete.connect(lifecycle.cancel_queued_runs_of, sender="profiles.Profile",
                           dispatch_uid="runs.cancel_queued_runs_of")

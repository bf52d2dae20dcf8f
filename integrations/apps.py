from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from workflows.access import register_run_check

        from .access import workflow_refusal

        # Running a workflow that reads an integration is using that integration.
        register_run_check(workflow_refusal)

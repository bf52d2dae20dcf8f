from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from workflows.access import register_run_check
        from workflows.models import StepType
        from workflows.runner import register_step_type
        from workflows.step_types import provide_integration_steps

        from .access import workflow_refusal
        from .workflow_steps import StepEditor, run_step

        # Running a workflow that reads an integration is using that integration.
        register_run_check(workflow_refusal)
        register_step_type(StepType.INTEGRATION, run_step)
        provide_integration_steps(StepEditor())

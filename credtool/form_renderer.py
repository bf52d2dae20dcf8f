from django.forms.renderers import TemplatesSetting


class FormRenderer(TemplatesSetting):
    """Our own field template: label beside the field, errors and help text under it."""

    field_template_name = "forms/field.html"

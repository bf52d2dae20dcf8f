from django.contrib import admin

from .models import Integration, QueryRun


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "updated_at")
    # Configurations (and their secrets) stay out of the admin: they are edited through the
    # integration's own forms only, which keep a stored secret where it was saved for.


@admin.register(QueryRun)
class QueryRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "integration", "user", "status", "created_at", "duration_ms", "row_count")
    list_filter = ("status",)
    exclude = ("results",)
    readonly_fields = [f.name for f in QueryRun._meta.fields if f.name != "results"]

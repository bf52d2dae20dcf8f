from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from credtool import health

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="integrations:list", permanent=False)),
    path("accounts/", include("accounts.urls")),
    path("admin/", admin.site.urls),
    path("integrations/", include("integrations.urls")),
    path("exports/", include("exports.urls")),
    path("workflows/", include("workflows.urls")),
    path("profiles/", include("profiles.urls")),
    path("audit/", include("audit.urls")),
    path("api/", include("api.urls")),
    path("api-tokens/", include("api.token_urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]

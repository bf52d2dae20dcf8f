from django.urls import path, re_path

from . import views

app_name = "api"
urlpatterns = [
    path("v1/workflows/<str:name>/run", views.run_workflow, name="run_workflow"),
    # path: an integration's name may hold a slash.
    path("v1/integrations/<path:name>/query", views.query, name="query"),
    path("v1/runs/<str:run_id>", views.run, name="run"),
    path("v1/runs/<str:run_id>/cancel", views.cancel, name="cancel"),
    path("v1/openapi.json", views.openapi_document, name="openapi"),
    # Last: anything else under /api/ is a JSON 404, never the HTML page.
    re_path(r"^", views.not_found, name="not_found"),
]

from django.urls import path

from . import saved_query_views, schema_views, views

app_name = "integrations"
urlpatterns = [
    path("", views.integration_list, name="list"),
    path("new/", views.integration_create, name="create"),
    path("test-connection/", views.test_connection, name="test_connection"),
    path("test-connection/<int:pk>/", views.connection_check, name="connection_check"),
    path("preview-credentials/", views.preview_credentials, name="preview_credentials"),
    path("<int:pk>/", views.integration_detail, name="detail"),
    path("<int:pk>/edit/", views.integration_edit, name="edit"),
    path("<int:pk>/delete/", views.integration_delete, name="delete"),
    path("<int:pk>/configurations/new/", views.configuration_edit, name="configuration_create"),
    path("<int:pk>/configurations/<int:configuration_id>/", views.configuration_edit, name="configuration_edit"),
    path("<int:pk>/configurations/<int:configuration_id>/delete/", views.configuration_delete,
         name="configuration_delete"),
    path("<int:pk>/query/", views.run_query, name="run_query"),
    path("<int:pk>/schema/", schema_views.schema_panel, name="schema"),
    path("<int:pk>/schema/refresh/", schema_views.refresh_schema, name="refresh_schema"),
    path("<int:pk>/schema.json", schema_views.schema_json, name="schema_json"),
    path("<int:pk>/draft/", saved_query_views.save_draft, name="save_draft"),
    path("<int:pk>/saved/", saved_query_views.saved_query_list, name="saved_queries"),
    path("<int:pk>/saved/new/", saved_query_views.save_query, name="save_query"),
    path("<int:pk>/saved/<int:saved_id>/", saved_query_views.saved_query_edit, name="saved_query_edit"),
    path("<int:pk>/saved/<int:saved_id>/delete/", saved_query_views.saved_query_delete, name="saved_query_delete"),
    path("<int:pk>/runs/<int:run_id>/", views.query_run, name="run"),
    path("<int:pk>/runs/<int:run_id>/cancel/", views.cancel_run, name="cancel_run"),
    path("<int:pk>/runs/<int:run_id>/csv/", views.run_csv, name="run_csv"),
    path("<int:pk>/runs/<int:run_id>/csv/<int:number>/", views.run_csv, name="run_csv_result"),
]

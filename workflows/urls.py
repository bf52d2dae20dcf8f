from django.urls import path

from . import views

app_name = "workflows"
urlpatterns = [
    path("", views.workflow_list, name="list"),
    path("new/", views.workflow_create, name="create"),
    path("editor/steps/", views.edit_steps, name="edit_steps"),
    path("editor/parameters/", views.edit_parameters, name="edit_params"),
    path("editor/schedule/", views.schedule_reading, name="schedule_reading"),
    path("<int:pk>/", views.workflow_detail, name="detail"),
    path("<int:pk>/edit/", views.workflow_edit, name="edit"),
    path("<int:pk>/delete/", views.workflow_delete, name="delete"),
    path("<int:pk>/run/", views.start_run, name="run"),
    path("<int:pk>/runs/<int:run_id>/", views.workflow_run, name="run_detail"),
    path("<int:pk>/runs/<int:run_id>/cancel/", views.cancel_run, name="cancel_run"),
]

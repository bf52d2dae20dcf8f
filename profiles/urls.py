from django.urls import path

from . import views

app_name = "profiles"
urlpatterns = [
    path("", views.profile_list, name="list"),
    path("new/", views.profile_create, name="create"),
    path("<int:pk>/", views.profile_edit, name="edit"),
    path("<int:pk>/delete/", views.profile_delete, name="delete"),
]

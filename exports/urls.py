from django.urls import path

from . import views

app_name = "exports"
urlpatterns = [
    path("runs/<int:run_id>/results/<int:number>/export/<str:fmt>/", views.start, name="start"),
    path("runs/<int:run_id>/results/<int:number>/json/", views.stored_json, name="stored_json"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/cancel/", views.cancel, name="cancel"),
    path("<int:pk>/download/", views.download, name="download"),
]

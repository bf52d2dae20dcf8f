from django.contrib.auth import views as auth_views
from django.urls import include, path

from .forms import LoginForm

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(form_class=LoginForm), name="login"),
    path("", include("django.contrib.auth.urls")),
]

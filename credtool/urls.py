from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from accounts.forms import LoginForm

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="integrations:list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(form_class=LoginForm), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("integrations/", include("integrations.urls")),
    path("workflows/", include("workflows.urls")),
    path("audit/", include("audit.urls")),
]

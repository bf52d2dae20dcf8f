from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from audit.log import record_event

from .forms import ProfileForm
from .models import Profile
from .usage import configurations_using


def _can(perm: str):
    return permission_required(perm, raise_exception=True)


@require_GET
@_can("profiles.view_profile")
def profile_list(request: HttpRequest) -> HttpResponse:
    profiles = Profile.objects.annotate(configurations=Count("configuration_links"))
    return render(request, "profiles/profile_list.html", {"profiles": profiles})


@require_http_methods(["GET", "POST"])
@_can("profiles.add_profile")
def profile_create(request: HttpRequest) -> HttpResponse:
    return _edit(request, None)


@require_http_methods(["GET", "POST"])
@_can("profiles.change_profile")
def profile_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename a profile (its key never changes)."""
    return _edit(request, get_object_or_404(Profile, pk=pk))


def _edit(request: HttpRequest, profile: Profile | None) -> HttpResponse:
    form = ProfileForm(request.POST or None, instance=profile)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            saved = form.save()
            record_event(request, "change" if profile else "create", saved, fields=sorted(form.changed_data))
        messages.success(request, f"Profile “{saved.name}” was {'saved' if profile else 'added'}.")
        return redirect("profiles:list")
    return render(request, "profiles/profile_form.html", {"form": form, "profile": profile})


@require_http_methods(["GET", "POST"])
@_can("profiles.delete_profile")
def profile_delete(request: HttpRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(Profile, pk=pk)
    using = configurations_using(profile)
    last = not Profile.objects.exclude(pk=profile.pk).exists()
    if request.method == "POST" and not using and not last:
        name = profile.name
        with transaction.atomic():
            record_event(request, "delete", profile)
            profile.delete()
        messages.success(request, f"Profile “{name}” was deleted.")
        return redirect("profiles:list")
    if request.method == "POST":
        messages.error(request, f"“{profile.name}” is still used and was not deleted.")
    return render(request, "profiles/profile_confirm_delete.html", {"profile": profile, "using": using, "last": last})

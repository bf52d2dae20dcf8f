from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def workflow_list(request: HttpRequest) -> HttpResponse:
    return render(request, "workflows/workflow_list.html", {"workflows": []})

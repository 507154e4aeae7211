from django.urls import path, re_path

from realtime.consumers import DashboardConsumer
from realtime.middleware import TokenAuthMiddleware, refuse_unrouted

websocket_urlpatterns = [
    # django-stubs expects Django views here; Channels routes ASGI apps.
    path("ws/", TokenAuthMiddleware(DashboardConsumer.as_asgi())),  # type: ignore[arg-type]
    # Any other path is refused before a token is looked at.
    re_path(r"", refuse_unrouted),  # type: ignore[arg-type]
]

from django.urls import path, re_path

from realtime.consumers import DashboardConsumer
from realtime.middleware import TokenAuthMiddleware, refuse_unrouted

# channels-stubs types the consumer with its own scope and event types,
# which the middleware's plain ASGI signature does not spell out.
dashboard = TokenAuthMiddleware(DashboardConsumer.as_asgi())  # type: ignore[arg-type]

websocket_urlpatterns = [
    # django-stubs expects Django views in path(); Channels routes ASGI apps.
    path("ws/", dashboard),  # type: ignore[arg-type]
    # Any other path is refused before a token is looked at.
    re_path(r"", refuse_unrouted),  # type: ignore[arg-type]
]

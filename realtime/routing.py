from django.urls import path

from realtime.consumers import DashboardConsumer

websocket_urlpatterns = [
    # django-stubs expects a Django view here; Channels routes ASGI apps.
    path("ws/", DashboardConsumer.as_asgi()),  # type: ignore[arg-type]
]

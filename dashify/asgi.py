"""
ASGI entry point: Django for HTTP, the token-checked dashboard socket for
WebSockets. Serve with ``daphne dashify.asgi:application``.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashify.settings")
django_application = get_asgi_application()

# Imported after Django is set up: they load models.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from realtime.middleware import TokenAuthMiddleware  # noqa: E402
from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # channels-stubs wants URLRouter's routes and its callers typed with
        # its own scope and pattern types, which Django's path() and this
        # middleware's plain ASGI signature do not use.
        "websocket": TokenAuthMiddleware(
            URLRouter(websocket_urlpatterns)  # type: ignore[arg-type]
        ),
    }
)

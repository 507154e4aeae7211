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

from realtime.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        # The one socket route goes through the handshake middleware
        # (realtime.routing). channels-stubs wants URLRouter's routes typed
        # with its own pattern types, which Django's path() does not use.
        "websocket": URLRouter(websocket_urlpatterns),  # type: ignore[arg-type]
    }
)

"""
The baseline application: the same ASGI server, settings and channel layer
as Dashify, with none of its authentication, database work or protocol.

Serve with ``daphne bench.echo_asgi:application`` (DJANGO_DEBUG=1, like
the suite's Dashify servers). Routes:

``/ws/echo/``        accept, send a hello frame, echo every text frame;
``/ws/group/``       accept, join one group, send a hello frame, and
                     forward every group message to the client;
``/ws/group/send/``  accept and turn every text frame into one
                     ``group_send`` to that group (not itself a member).

Nothing is checked, not even the Origin: the handshake and message costs
measured here are what Channels and daphne cost before any application
logic, the floor Dashify's figures are compared with.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashify.settings")
django_application = get_asgi_application()

# Imported once Django is set up, as in dashify/asgi.py.
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

GROUP = "bench.fanout"
HELLO = '{"type":"hello"}'


class EchoConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=HELLO)

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        await self.send(text_data=text_data, bytes_data=bytes_data)


class GroupConsumer(AsyncWebsocketConsumer):
    # Channels joins these groups before connect() and leaves them after
    # disconnect(), the stock way.
    groups = [GROUP]

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=HELLO)

    async def relay(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class GroupSenderConsumer(AsyncWebsocketConsumer):
    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None
    ) -> None:
        await self.channel_layer.group_send(GROUP, {"type": "relay", "text": text_data})


# django-stubs type path() for views only, where Channels' URLRouter takes
# ASGI applications (realtime/routing.py meets the same mismatch).
websocket_routes: list[Any] = [
    path("ws/echo/", EchoConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/group/", GroupConsumer.as_asgi()),  # type: ignore[arg-type]
    path("ws/group/send/", GroupSenderConsumer.as_asgi()),  # type: ignore[arg-type]
]

application = ProtocolTypeRouter(
    {"http": django_application, "websocket": URLRouter(websocket_routes)}
)

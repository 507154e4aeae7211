"""
The physical ceiling: a bare ``websockets`` server (asyncio), with no
framework, no channel layer and no Redis, in a process of its own.

Usage::

    python -m bench.bare_ws --port PORT

Paths mirror bench.echo_asgi: ``/echo`` sends a hello frame and echoes
every message; ``/sub`` sends a hello frame and then only receives;
``/pub`` broadcasts each message it gets to every ``/sub`` socket, with
``websockets.broadcast`` (one write per socket, no waiting).
"""

import argparse
import asyncio

from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.common import HOST

HELLO = '{"type":"hello"}'


async def main(port: int) -> None:
    subscribers: set[ServerConnection] = set()

    async def handler(websocket: ServerConnection) -> None:
        path = websocket.request.path if websocket.request else ""
        if path == "/pub":
            async for message in websocket:
                broadcast(subscribers, message)
            return
        await websocket.send(HELLO)
        if path == "/echo":
            async for message in websocket:
                await websocket.send(message)
        elif path == "/sub":
            subscribers.add(websocket)
            try:
                await websocket.wait_closed()
            finally:
                subscribers.discard(websocket)

    # Compression off, as on the clients: daphne negotiates none either.
    async with serve(handler, HOST, port, compression=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(main(parser.parse_args().port))

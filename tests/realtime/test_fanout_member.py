"""
One socket's side of the fan-out hub (realtime.fanout.Member), driven with
real asyncio and a stand-in for the ASGI server's send: frames stay in
order, a socket whose writes must wait holds up nobody else, and one that
stops taking frames is cut off at its outbox's cap.
"""

import asyncio
from typing import Any

import pytest
from django.test import override_settings

from realtime import fanout

EVENT: dict[str, Any] = {"type": "card.updated"}


class Socket:
    """What a server's send does: take a frame at once, or wait while held."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.open = asyncio.Event()
        self.open.set()
        self.broken = False
        self.overflows = 0
        self.cancelled = False
        self.member = fanout.Member()
        self.member.bind(
            send=self.send, on_event=lambda event: True, on_overflow=self.overflow
        )
        self.member.start()

    async def send(self, frame: str) -> None:
        if self.broken:
            raise OSError("connection reset")
        try:
            if not self.open.is_set():
                await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        self.frames.append(frame)

    def overflow(self) -> None:
        self.overflows += 1

    def deliver(self, *frames: str) -> None:
        for frame in frames:
            self.member.deliver(frame, EVENT)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_a_socket_takes_at_once_are_written_without_a_task() -> None:
    socket = Socket()

    socket.deliver("a", "b", "c")

    assert socket.frames == ["a", "b", "c"]
    assert socket.member.writer is None


async def test_frames_behind_a_write_that_waits_follow_it_in_order() -> None:
    socket = Socket()
    socket.open.clear()

    socket.deliver("a", "b")
    socket.deliver("c")
    await settle()
    held = list(socket.frames)
    socket.open.set()
    await settle()

    assert held == []
    assert socket.frames == ["a", "b", "c"]
    assert socket.member.writer is None


async def test_a_socket_that_waits_delays_no_other_socket() -> None:
    slow, quick = Socket(), Socket()
    slow.open.clear()

    for frame in ("one", "two"):
        slow.deliver(frame)
        quick.deliver(frame)

    assert quick.frames == ["one", "two"]
    assert slow.frames == []


@override_settings(DASHIFY_WS_SEND_BUFFER=3)
async def test_a_socket_that_stops_taking_frames_overflows_once_and_alone() -> None:
    stuck, reader = Socket(), Socket()
    stuck.open.clear()

    frames = [f"event-{n}" for n in range(10)]
    for frame in frames:
        stuck.deliver(frame)
        reader.deliver(frame)
    await settle()

    assert (stuck.overflows, reader.overflows) == (1, 0)
    assert reader.frames == frames
    assert list(stuck.member.outbox) == []


async def test_a_broken_socket_drops_its_outbox_without_raising() -> None:
    socket = Socket()
    socket.broken = True

    socket.deliver("a", "b")

    assert socket.frames == []
    assert list(socket.member.outbox) == []


async def test_cancelling_a_waiting_writer_reaches_the_write_it_was_finishing() -> None:
    socket = Socket()
    socket.open.clear()
    socket.deliver("a")
    writer = socket.member.writer
    assert writer is not None
    await settle()

    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer

    assert socket.cancelled is True
    assert socket.member.writer is None


async def test_frames_wait_until_the_member_is_started() -> None:
    frames: list[str] = []

    async def send(frame: str) -> None:
        frames.append(frame)

    member = fanout.Member()
    member.bind(send=send, on_event=lambda e: True, on_overflow=lambda: None)
    member.deliver("hello-first", EVENT)
    before = list(frames)
    member.start()

    assert (before, frames) == ([], ["hello-first"])


async def test_events_before_binding_reach_the_socket_in_order_through_its_filter() -> (
    None
):
    frames: list[str] = []
    seen: list[str] = []

    async def send(frame: str) -> None:
        frames.append(frame)

    def on_event(event: dict[str, Any]) -> bool:
        seen.append(event["type"])
        return event["type"] != "session.ended"

    member = fanout.Member()
    member.deliver("n1", {"type": "notification.created"})
    member.deliver("end", {"type": "session.ended"})
    member.deliver("n2", {"type": "notification.read"})
    member.bind(send=send, on_event=on_event, on_overflow=lambda: None)
    member.start()

    assert seen == ["notification.created", "session.ended", "notification.read"]
    assert frames == ["n1", "n2"]


@override_settings(DASHIFY_WS_SEND_BUFFER=3)
async def test_a_flood_before_binding_overflows_the_socket_once_bound() -> None:
    overflows: list[bool] = []

    async def send(frame: str) -> None:
        pass

    member = fanout.Member()
    for n in range(10):
        member.deliver(f"event-{n}", EVENT)
    member.bind(
        send=send, on_event=lambda e: True, on_overflow=lambda: overflows.append(True)
    )

    assert overflows == [True]

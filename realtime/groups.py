"""
Channel-layer group names, built only from validated integers and the
hex session binding, so that no client input can name a group or make two
names collide.
"""


def session_group(binding: str) -> str:
    return f"session.{binding}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def room_group(tenant_id: int, room_id: int) -> str:
    return f"tenant.{tenant_id}.room.{room_id}"


def board_group(tenant_id: int, board_id: int) -> str:
    return f"tenant.{tenant_id}.board.{board_id}"

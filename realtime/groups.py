"""
Group names, built only from validated integers and the hex session
binding, so that no client input can name a group or make two names
collide, and no name contains a newline (realtime.fanout relies on it).

Personal groups hold one session's or one person's sockets; shared groups
hold the sockets that show one of a tenant's rooms or boards. The two
travel differently (realtime.fanout).
"""

PERSONAL_PREFIXES = ("session.", "user.")


def session_group(binding: str) -> str:
    return f"session.{binding}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def room_group(tenant_id: int, room_id: int) -> str:
    return f"tenant.{tenant_id}.room.{room_id}"


def board_group(tenant_id: int, board_id: int) -> str:
    return f"tenant.{tenant_id}.board.{board_id}"


def is_personal(group: str) -> bool:
    return group.startswith(PERSONAL_PREFIXES)

"""
Service-token scopes: one operation on one resource, written as
``<operation>:<name>=<id>:...``. The worker builds the scope of the call it
is about to make; the API builds the scope the request in hand needs and
compares the two exactly. Both use these functions, so they cannot drift.
"""

import hashlib


def marker(scope: str) -> str:
    """
    The value recorded in Redis for an unspent token of ``scope``, so that
    a token re-signed with another scope does not match the marker its
    jti was minted with.
    """
    return hashlib.sha256(scope.encode()).hexdigest()[:32]


def notification_create(*, tenant_id: int, user_id: int) -> str:
    return f"notification.create:tenant={tenant_id}:user={user_id}"


def export_complete(*, tenant_id: int, export_id: int) -> str:
    return f"export.complete:tenant={tenant_id}:export={export_id}"

from django.http import HttpRequest

from accounts.models import User


class AuthenticatedRequest(HttpRequest):
    """
    The request a view behind login_required receives: its user is a
    signed-in User, never AnonymousUser. For annotations only; Django still
    passes a plain HttpRequest.
    """

    user: User

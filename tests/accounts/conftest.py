from collections.abc import Callable

import pytest

from accounts.models import User


@pytest.fixture
def superuser(make_user: Callable[..., User]) -> User:
    return make_user("root", "acme", is_staff=True, is_superuser=True)

"""A session that is saved again is listed again, so revocation finds it."""

from django_redis import get_redis_connection

from accounts import services
from accounts.models import User
from accounts.services import EndReason
from accounts.sessions import SessionStore
from dashify.redis import key
from tests.conftest import session_exists, session_key_of, signed_in_client


def test_saving_a_session_puts_it_back_in_an_index_that_lost_it(alice: User) -> None:
    session_key = session_key_of(signed_in_client(alice))
    index = key("user-sessions", alice.pk)
    redis = get_redis_connection("sessions")
    redis.delete(index)  # as if the index had expired before the session

    store = SessionStore(session_key)
    store["touched"] = True
    store.save()

    assert redis.hexists(index, session_key)
    assert redis.ttl(index) > 0
    assert services.revoke_sessions(alice.pk, EndReason.DEACTIVATED) == 1
    assert not session_exists(session_key)

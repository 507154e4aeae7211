"""The job-queue pages of the admin are for superusers only."""

from collections.abc import Callable
from http import HTTPStatus

from django.test import Client

from accounts.models import User

QUEUE_PAGE = "/admin/django_rq/dashboard/"


def test_a_staff_member_without_superuser_rights_is_refused_the_job_queues(
    make_user: Callable[..., User],
) -> None:
    client = Client()
    client.force_login(make_user("support", "globex", is_staff=True))

    response = client.get(QUEUE_PAGE)

    assert response.status_code == HTTPStatus.FORBIDDEN
    assert response.content == b"The job queues are for superusers."


def test_a_superuser_sees_the_job_queues(make_user: Callable[..., User]) -> None:
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))

    assert client.get(QUEUE_PAGE).status_code == HTTPStatus.OK

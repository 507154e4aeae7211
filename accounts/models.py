from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser
from django.contrib.auth.models import UserManager as DjangoUserManager
from django.db import models


class Tenant(models.Model):
    """A customer organisation; every user and every realtime object has one."""

    slug = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UserManager(DjangoUserManager["User"]):
    def _create_user_object(
        self, username: str, email: str | None, password: str | None, **extra: Any
    ) -> "User":
        # createsuperuser passes the tenant's primary key for the "tenant"
        # field it prompts for; accept a Tenant or its id.
        tenant = extra.pop("tenant", None)
        if tenant is not None and not isinstance(tenant, Tenant):
            extra["tenant_id"] = int(tenant)
        elif tenant is not None:
            extra["tenant"] = tenant
        # Django 5.1 added this hook; django-stubs does not declare it yet.
        return super()._create_user_object(  # type: ignore[misc]
            username, email, password, **extra
        )


class User(AbstractUser):
    """A person who signs in. Belongs to exactly one tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="users")

    objects: ClassVar[UserManager] = UserManager()

    REQUIRED_FIELDS = ["email", "tenant"]

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

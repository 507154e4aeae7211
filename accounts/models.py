from django.contrib.auth.models import AbstractUser
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


class User(AbstractUser):
    """A person who signs in. Belongs to exactly one tenant."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="users")

    REQUIRED_FIELDS = ["email", "tenant"]

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

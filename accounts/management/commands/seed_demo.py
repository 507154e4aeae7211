from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import Tenant, User

DEMO_TENANTS = {
    "acme": ("Acme Corp", ["alice", "bob"]),
    "globex": ("Globex", ["carol"]),
}


class Command(BaseCommand):
    help = "Create the demo tenants and accounts (idempotent; DEBUG only)."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo creates accounts with a published password and runs "
                "only with DJANGO_DEBUG=1."
            )
        password = settings.DASHIFY_DEMO_PASSWORD
        self.created: list[str] = []
        with transaction.atomic():
            for slug, (name, usernames) in DEMO_TENANTS.items():
                tenant, _ = Tenant.objects.get_or_create(
                    slug=slug, defaults={"name": name}
                )
                for username in usernames:
                    self._ensure_user(username, tenant, password)
            admin = self._ensure_user(
                "admin", Tenant.objects.get(slug="acme"), password
            )
            if not (admin.is_staff and admin.is_superuser):
                admin.is_staff = admin.is_superuser = True
                admin.save(update_fields=["is_staff", "is_superuser"])
            self._seed_realtime()
        accounts = "alice, bob (acme), carol (globex), admin (superuser)"
        if self.created:
            self.stdout.write(
                f"Demo accounts: {accounts}; password for the new ones "
                f"({', '.join(self.created)}): {password}"
            )
        else:
            self.stdout.write(
                f"Demo accounts: {accounts}; they existed already, so their "
                "passwords are unchanged."
            )

    def _ensure_user(self, username: str, tenant: Tenant, password: str) -> User:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User(
                username=username, tenant=tenant, email=f"{username}@example.com"
            )
            user.set_password(password)
            user.save()
            self.created.append(username)
        return user

    def _seed_realtime(self) -> None:
        from realtime import services

        for tenant in Tenant.objects.all():
            services.ensure_demo_content(tenant)

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from accounts import selectors, services
from accounts.models import Tenant, User
from accounts.services import EndReason


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    list_display = ["username", "email", "tenant", "is_active", "is_staff"]
    list_filter = ["tenant", "is_active", "is_staff", "is_superuser"]
    search_fields = ["username", "email", "first_name", "last_name", "tenant__name"]
    list_select_related = ["tenant"]
    readonly_fields = ["sessions_link"]
    fieldsets = [
        # django-stubs types fieldsets as optional; UserAdmin always sets it.
        *DjangoUserAdmin.fieldsets,  # type: ignore[misc]
        ("Tenant and sessions", {"fields": ["tenant", "sessions_link"]}),
    ]
    add_fieldsets = [
        (
            None,
            {
                "classes": ["wide"],
                "fields": ["username", "tenant", "password1", "password2"],
            },
        )
    ]
    actions = ["revoke_all_sessions", "deactivate"]

    @admin.display(description="Live sessions")
    def sessions_link(self, user: User) -> str:
        if not user.pk:
            return "-"
        url = reverse("admin:accounts_user_sessions", args=[user.pk])
        count = len(selectors.live_sessions(user.pk))
        return format_html('<a href="{}">{} live session(s)</a>', url, count)

    @admin.action(description="Sign out all sessions of the selected users")
    def revoke_all_sessions(
        self, request: HttpRequest, queryset: QuerySet[User]
    ) -> None:
        total = sum(
            services.revoke_sessions(user.pk, EndReason.REVOKED) for user in queryset
        )
        self.message_user(request, f"Signed out {total} session(s).", messages.SUCCESS)

    @admin.action(description="Deactivate the selected users (signs them out)")
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        # Save one by one, not queryset.update(): saving is what triggers
        # the revocation receiver.
        for user in queryset:
            user.is_active = False
            user.save(update_fields=["is_active"])
        self.message_user(request, "Deactivated and signed out.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:user_id>/sessions/",
                self.admin_site.admin_view(self.sessions_view),
                name="accounts_user_sessions",
            ),
            *super().get_urls(),
        ]

    def sessions_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        """List one user's live sessions; POST revokes one or all."""
        user = get_object_or_404(User, pk=user_id)
        if not self.has_change_permission(request, user):
            return HttpResponse(status=403)
        if request.method == "POST":
            if "revoke_all" in request.POST:
                count = services.revoke_sessions(user.pk, EndReason.REVOKED)
            else:
                count = services.revoke_sessions(
                    user.pk, EndReason.REVOKED, only=request.POST.get("session", "")
                )
            self.message_user(request, f"Signed out {count} session(s).")
            return redirect("admin:accounts_user_sessions", user_id=user.pk)

        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": user,
            "title": f"Live sessions of {user.username}",
            "sessions": selectors.live_sessions(user.pk, request.session.session_key),
        }
        return TemplateResponse(request, "admin/accounts/user/sessions.html", context)

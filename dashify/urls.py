from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from realtime import views as realtime_views


class FaviconRedirect(RedirectView):
    permanent = True

    def get_redirect_url(self, *args: object, **kwargs: object) -> str:
        # Resolved per request: the hashed name exists only once the
        # static files were collected.
        return static("dashify/favicon.svg")


urlpatterns = [
    path("", realtime_views.dashboard, name="dashboard"),
    path("accounts/", include("accounts.urls")),
    path("realtime/", include("realtime.urls")),
    path("internal/", include("internal.urls")),
    path("admin/", admin.site.urls),
    # Pages that name no icon (the admin's) make browsers ask for this.
    path("favicon.ico", FaviconRedirect.as_view(), name="favicon"),
]

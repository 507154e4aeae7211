from django.contrib import admin
from django.urls import include, path

from realtime import views as realtime_views

urlpatterns = [
    path("", realtime_views.dashboard, name="dashboard"),
    path("accounts/", include("accounts.urls")),
    path("realtime/", include("realtime.urls")),
    path("internal/", include("internal.urls")),
    path("admin/", admin.site.urls),
]

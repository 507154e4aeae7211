from django.urls import path

from internal import views

app_name = "internal"

urlpatterns = [
    path("notifications/", views.create_notification, name="notifications"),
    path("exports/<int:export_id>/", views.complete_export, name="export"),
]

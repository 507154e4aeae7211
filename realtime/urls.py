from django.urls import path

from realtime import views

app_name = "realtime"

urlpatterns = [
    path("cards/<int:card_id>/move/", views.move_card_view, name="move_card"),
    path(
        "boards/<int:board_id>/export/",
        views.request_export_view,
        name="request_export",
    ),
    path(
        "exports/<int:export_id>/download/",
        views.download_export_view,
        name="download_export",
    ),
]

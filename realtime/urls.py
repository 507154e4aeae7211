from django.urls import path

from realtime import views

app_name = "realtime"

urlpatterns = [
    path("cards/<int:card_id>/move/", views.move_card_view, name="move_card"),
]

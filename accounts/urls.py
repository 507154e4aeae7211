from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("sessions/", views.sessions_view, name="sessions"),
    path("password/", views.password_change_view, name="password_change"),
    path("ws-token/", views.ws_token_view, name="ws_token"),
]

from django.apps import AppConfig


class InternalConfig(AppConfig):
    name = "internal"
    verbose_name = "Internal API"

from django.apps import AppConfig


class DashifyConfig(AppConfig):
    name = "dashify"

    def ready(self) -> None:
        from dashify import checks  # noqa: F401  (registers the system checks)

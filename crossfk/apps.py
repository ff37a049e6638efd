from django.apps import AppConfig


class CrossFKConfig(AppConfig):
    name = "crossfk"
    verbose_name = "Cross-database foreign keys"

    def ready(self) -> None:
        from crossfk import checks  # noqa: F401  (registers the checks)

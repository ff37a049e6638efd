from django.apps import AppConfig


class CrossFKConfig(AppConfig):
    name = "crossfk"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Cross-database foreign keys"

    def ready(self) -> None:
        from crossfk import checks, serializers  # noqa: F401  (registers checks)

        serializers.install()

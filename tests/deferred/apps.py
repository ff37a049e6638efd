from django.apps import AppConfig


class DeferredConfig(AppConfig):
    name = "tests.deferred"
    label = "deferred"

from django.apps import AppConfig


class DeleteTwinsConfig(AppConfig):
    name = "tests.deletetwins"
    label = "deletetwins"

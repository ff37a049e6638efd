from django.apps import AppConfig


class DeleteCasesConfig(AppConfig):
    name = "tests.deletecases"
    label = "deletecases"

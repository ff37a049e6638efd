from django.apps import AppConfig


class LookupTwinsConfig(AppConfig):
    name = "tests.lookuptwins"
    label = "lookuptwins"

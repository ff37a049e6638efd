#!/usr/bin/env python
"""Django's command-line utility for the crossfk demo project."""

import os
import sys
from pathlib import Path


def main() -> None:
    # Import crossfk from this checkout, installed or not.
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()

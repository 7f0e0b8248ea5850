#!/usr/bin/env python3
"""Command-line entry point of the stand-in pms-backend app (test fixture)."""
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmsapp.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)

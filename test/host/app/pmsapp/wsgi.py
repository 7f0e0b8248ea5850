"""WSGI entry point used by gunicorn (pmsapp.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmsapp.settings")

application = get_wsgi_application()

"""Celery app of the stand-in backend; configuration comes from Django settings (CELERY_*)."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pmsapp.settings")

app = Celery("pmsapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

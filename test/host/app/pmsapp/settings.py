"""Settings of the stand-in pms-backend app.

Everything secret or host-specific comes from the process environment, which systemd fills from
the EnvironmentFile= that the program under test installs. Like the real app, a missing
SECRET_KEY stops the app from starting; unlike many apps, malformed values are rejected instead of
being silently coerced, so a badly rendered env file shows up as a failing service.
"""
import os

from django.core.exceptions import ImproperlyConfigured


def _list(name):
    raw = os.environ.get(name, "")
    return [item.strip() for item in raw.split(",") if item.strip()]


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY environment variable is not set")
SECRET_KEY_FALLBACKS = _list("SECRET_KEY_FALLBACKS")

_debug = os.environ.get("DEBUG", "False")
if _debug not in ("True", "False"):
    raise ImproperlyConfigured(f"DEBUG must be 'True' or 'False', got {_debug!r}")
DEBUG = _debug == "True"

ALLOWED_HOSTS = _list("ALLOWED_HOSTS")

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "pmsapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "pmsapp.urls"
WSGI_APPLICATION = "pmsapp.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("DB_NAME"),
        "USER": os.environ.get("DB_USER"),
        "PASSWORD": os.environ.get("DB_PASSWORD"),
        "HOST": os.environ.get("DB_HOST", ""),
        "PORT": os.environ.get("DB_PORT", ""),
        # A fresh connection per request, so /health/ proves the current password works.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"connect_timeout": 5},
    }
}

SESSION_ENGINE = os.environ.get("SESSION_ENGINE", "django.contrib.sessions.backends.db")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# Celery: a task in flight when the worker stops is either finished (warm shutdown, the unit's
# TimeoutStopSec is longer than any test task) or, if the worker dies, handed back to the broker.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 120}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "INFO"},
}

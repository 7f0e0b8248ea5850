"""Settings of the stand-in pms-backend app, written the way the old rotation guide's commit
left the real one: every secret and host-specific value comes from the process environment,
which systemd fills from `EnvironmentFile=`; nothing is read from a file by the app itself.

Production-like on purpose (the host tests must see what a real server does):
- a missing SECRET_KEY stops the app with the guide's own error;
- DEBUG is off unless the environment says `True`;
- ALLOWED_HOSTS holds the public name only, so a request with `Host: 127.0.0.1` gets 400;
- `manage.py check --deploy` passes without warnings on a proper key (and warns on a weak one).
"""
import os

from django.core.exceptions import ImproperlyConfigured


def _list(name, default=""):
    raw = os.getenv(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


# The lines from the guide's commit.
SECRET_KEY = os.getenv("SECRET_KEY")
if not SECRET_KEY:
    raise ValueError("SECRET_KEY environment variable must be set")

# Graceful rotation: keys that still verify old sessions and signatures (comma-separated).
SECRET_KEY_FALLBACKS = _list("SECRET_KEY_FALLBACKS")

# Only the two spellings the program writes; anything else is a rendering bug, and a service
# that refuses to start shows it (a silently coerced value would not).
_debug = os.getenv("DEBUG", "False")
if _debug not in ("True", "False"):
    raise ImproperlyConfigured(f"DEBUG must be 'True' or 'False', got {_debug!r}")
DEBUG = _debug == "True"

# The public name only, as in production: nginx forwards requests for it to gunicorn.
ALLOWED_HOSTS = _list("ALLOWED_HOSTS", "api.pms.example.com")

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
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pmsapp.urls"

# Django's own LoginView at /accounts/login/ (templates/registration/login.html), as a stock
# project has it: the rollout's login probe logs in there like a browser.
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]
LOGIN_REDIRECT_URL = "/me/"
WSGI_APPLICATION = "pmsapp.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.getenv("DB_NAME"),
        "USER": os.getenv("DB_USER"),
        "PASSWORD": os.getenv("DB_PASSWORD"),
        "HOST": os.getenv("DB_HOST", "localhost"),
        "PORT": os.getenv("DB_PORT", "5432"),
        # A fresh connection per request, so /health/ proves the current password works.
        "CONN_MAX_AGE": 0,
        "OPTIONS": {"connect_timeout": 5},
    }
}

SESSION_ENGINE = os.getenv("SESSION_ENGINE", "django.contrib.sessions.backends.db")
# The fleet session test (issue 20) sets it True: the CSRF secret then lives in the signed session.
CSRF_USE_SESSIONS = os.getenv("CSRF_USE_SESSIONS", "False") == "True"

# TLS ends at nginx in front of gunicorn, which also redirects http to https; Django trusts its
# X-Forwarded-Proto header. Django's own redirect stays off so that a health check from the
# host itself (plain http to 127.0.0.1:8000) is answered, hence W008 is silenced.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = False
SILENCED_SYSTEM_CHECKS = ["security.W008"]
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# Mail and error reporting: read like the real app does; nothing here sends mail or events.
EMAIL_HOST = os.getenv("EMAIL_HOST", "localhost")
EMAIL_HOST_USER = os.getenv("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.getenv("EMAIL_HOST_PASSWORD", "")
SENTRY_DSN = os.getenv("SENTRY_DSN", "")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"

# Celery via Redis: a task in flight when the worker stops is either finished (warm shutdown,
# the unit's TimeoutStopSec is longer than any test task) or, if the worker dies, handed back to
# the broker.
CELERY_BROKER_URL = os.getenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
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

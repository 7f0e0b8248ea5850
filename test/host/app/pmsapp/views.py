"""JSON endpoints the host tests use to observe which secrets the running app really has."""
import hashlib
import json
import secrets
import socket

from django.conf import settings
from django.contrib.auth import get_user_model, login
from django.core import signing
from django.db import connection
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from .models import TaskRow
from .tasks import record

TEST_USER = "pms-host-test"


def fingerprint(value):
    """First 16 hex chars of sha256(value): identifies a key without revealing it."""
    return hashlib.sha256(value.encode()).hexdigest()[:16]


@require_GET
def health(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any DB failure means "not healthy"; say which kind
        return JsonResponse({"ok": False, "error": type(exc).__name__, "detail": str(exc)[:300]}, status=503)
    return JsonResponse({"ok": True})


@require_GET
def key_fingerprint(request):
    return JsonResponse(
        {
            "secret_key": fingerprint(settings.SECRET_KEY),
            "fallbacks": [fingerprint(k) for k in settings.SECRET_KEY_FALLBACKS],
            "debug": settings.DEBUG,
            "allowed_hosts": settings.ALLOWED_HOSTS,
        }
    )


@csrf_exempt
@require_POST
def login_view(request):
    user, _ = get_user_model().objects.get_or_create(username=TEST_USER)
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    return JsonResponse({"user": user.username})


@require_GET
def me(request):
    if not request.user.is_authenticated:
        return JsonResponse({"authenticated": False}, status=401)
    return JsonResponse({"authenticated": True, "user": request.user.get_username()})


@csrf_exempt
@require_POST
def token_issue(request):
    token = signing.dumps({"user": TEST_USER, "nonce": secrets.token_hex(8)}, salt="pms-host-test")
    return JsonResponse({"token": token})


def _token_from(request):
    body = request.body.decode("utf-8", "replace").strip()
    if body.startswith("{"):
        try:
            return str(json.loads(body).get("token", ""))
        except ValueError:
            return ""
    return body or request.GET.get("token", "")


@csrf_exempt
@require_POST
def token_verify(request):
    try:
        payload = signing.loads(_token_from(request), salt="pms-host-test")
    except signing.BadSignature:
        return JsonResponse({"valid": False}, status=400)
    return JsonResponse({"valid": True, "payload": payload})


def _enqueue(request, seconds):
    task_id = request.GET.get("id", "")
    if not task_id:
        return JsonResponse({"error": "query parameter id is required"}, status=400)
    record.delay(task_id, seconds)
    return JsonResponse({"queued": task_id, "seconds": seconds}, status=202)


@csrf_exempt
@require_POST
def task_enqueue(request):
    return _enqueue(request, 0.0)


@csrf_exempt
@require_POST
def slow_task_enqueue(request):
    try:
        seconds = float(request.GET.get("seconds", "5"))
    except ValueError:
        return JsonResponse({"error": "seconds must be a number"}, status=400)
    return _enqueue(request, seconds)


@require_GET
def task_status(request, task_id):
    row = TaskRow.objects.filter(id=task_id).first()
    if row is None:
        return JsonResponse({"id": task_id, "done": False}, status=404)
    return JsonResponse({"id": task_id, "done": True, "done_at": row.done_at.isoformat(), "slept_seconds": row.slept_seconds})


# Password-reset tokens (issue 10): made with SECRET_KEY, checked against SECRET_KEY and
# SECRET_KEY_FALLBACKS by Django's PasswordResetTokenGenerator.
@csrf_exempt
@require_POST
def reset_token_issue(request):
    from django.contrib.auth.tokens import default_token_generator

    user, _ = get_user_model().objects.get_or_create(username=TEST_USER)
    return JsonResponse({"token": default_token_generator.make_token(user)})


@csrf_exempt
@require_POST
def reset_token_check(request):
    from django.contrib.auth.tokens import default_token_generator

    user, _ = get_user_model().objects.get_or_create(username=TEST_USER)
    if not default_token_generator.check_token(user, _token_from(request)):
        return JsonResponse({"valid": False}, status=400)
    return JsonResponse({"valid": True})


# A browser session across a fleet (issue 20): a client logged in through the stock LoginView keeps
# reading a page that needs the session and posting a CSRF-protected form, each request possibly
# on another host. With SESSION_ENGINE signed_cookies the session is signed with SECRET_KEY, and
# with CSRF_USE_SESSIONS the CSRF secret lives in it: both fail on a host that rejects the key.
@require_GET
def session_page(request):
    if not request.user.is_authenticated:
        return JsonResponse({"authenticated": False, "host": socket.gethostname()}, status=401)
    return JsonResponse({"user": request.user.get_username(), "host": socket.gethostname(), "csrfToken": get_token(request)})


@require_POST
def session_post(request):
    # Not csrf_exempt: CsrfViewMiddleware answers 403 before this runs when the token is refused.
    if not request.user.is_authenticated:
        return JsonResponse({"authenticated": False, "host": socket.gethostname()}, status=401)
    request.session["posts"] = int(request.session.get("posts", 0)) + 1
    return JsonResponse({"saved": True, "host": socket.gethostname()})

from django.contrib.auth import views as auth_views
from django.urls import path

from . import views

urlpatterns = [
    path("health/", views.health),
    path("key-fingerprint/", views.key_fingerprint),
    path("login/", views.login_view),
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("me/", views.me),
    path("session/", views.session_page),
    path("session/post/", views.session_post),
    path("token/issue/", views.token_issue),
    path("token/verify/", views.token_verify),
    path("reset-token/issue/", views.reset_token_issue),
    path("reset-token/check/", views.reset_token_check),
    path("task/", views.task_enqueue),
    path("slow-task/", views.slow_task_enqueue),
    path("task/<str:task_id>/", views.task_status),
]

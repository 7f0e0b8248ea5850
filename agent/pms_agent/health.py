"""Health URLs and the login probe (the old guide's "tested login"), from the host itself."""

from __future__ import annotations

import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from .constants import HTTP_TIMEOUT

COOKIE = re.compile(r"^\s*([^=;\s]+)=([^;]*)")
CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"')


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@dataclass
class Answer:
    code: str  # "000" when there was no answer
    location: str = ""
    cookies: Dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class HttpSettings:
    host: str = ""
    ca: str = ""
    insecure: bool = False

    def opener(self) -> urllib.request.OpenerDirector:
        ctx = ssl.create_default_context(cafile=self.ca or None)
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))

    def request(
        self, url: str, headers: Optional[Dict[str, str]] = None, data: Optional[bytes] = None, keep_body: bool = False
    ) -> Answer:
        if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
            return Answer("000")
        all_headers = dict(headers or {})
        if self.host:
            all_headers["Host"] = self.host
        req = urllib.request.Request(url, data=data, headers=all_headers)  # noqa: S310 - http(s) only, checked above
        try:
            response = self.opener().open(req, timeout=HTTP_TIMEOUT)
        except urllib.error.HTTPError as e:
            answer = Answer(str(e.code), e.headers.get("Location") or "")
            answer.cookies = cookies_of(e.headers.get_all("Set-Cookie") or [])
            return answer
        except (OSError, ValueError, ssl.SSLError):
            return Answer("000")
        with response:
            answer = Answer(str(response.status), response.headers.get("Location") or "")
            answer.cookies = cookies_of(response.headers.get_all("Set-Cookie") or [])
            try:
                answer.body = response.read(200000) if keep_body else b""
            except OSError:
                answer.body = b""
        return answer


def cookies_of(headers: List[str]) -> Dict[str, str]:
    jar: Dict[str, str] = {}
    for header in headers:
        m = COOKIE.match(header)
        if m:
            jar[m.group(1)] = m.group(2)
    return jar


def wait_healthy(
    urls: List[str],
    settings: HttpSettings,
    timeout: int,
    still_ok: Optional[Callable[[], Optional[Tuple[str, str]]]] = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Optional[Tuple[str, str]]:
    """Every URL answers 2xx within timeout; else (check, detail). still_ok returns a failure of the
    unit (stopped, restarted) found meanwhile, which ends the wait at once."""
    for url in urls:
        deadline = clock() + timeout
        while True:
            answer = settings.request(url)
            if answer.code.startswith("2"):
                break
            if still_ok is not None:
                problem = still_ok()
                if problem is not None:
                    return problem
            if clock() >= deadline:
                return "health-url", health_detail(url, answer, timeout, settings.host)
            sleep(1)
    return None


def health_detail(url: str, answer: Answer, timeout: int, host: str) -> str:
    if answer.code.startswith("3") and answer.location:
        return (
            f"{url} answered {answer.code} redirect to {answer.location} (redirects are not followed: check the final"
            " URL, or the Host header / https settings)"
        )
    shown = "nothing (connection failed)" if answer.code == "000" else answer.code
    return f"{url} answered {shown} for {timeout}s" + (f" (Host: {host})" if host else "")


@dataclass
class LoginProbe:
    url: str
    user: str
    password: str
    password_file: str
    check_url: str
    settings: HttpSettings

    def headers(self, url: str, jar: Dict[str, str]) -> Dict[str, str]:
        parts = urllib.parse.urlsplit(url)
        authority = self.settings.host or parts.netloc
        headers = {"Referer": f"{parts.scheme}://{authority}/"}  # Django's CSRF check on https
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        return headers

    def run(self) -> Tuple[bool, str]:
        """(True, summary) or (False, detail): GET the form, POST it, GET a page needing the session."""
        jar: Dict[str, str] = {}
        page = self.settings.request(self.url, self.headers(self.url, jar), keep_body=True)
        jar.update(page.cookies)
        m = CSRF_TOKEN.search(page.body.decode("utf-8", "replace"))
        token = m.group(1) if m else ""
        if page.code != "200" or not token:
            missing = "" if token else ", no csrfmiddlewaretoken in the page"
            return False, (
                f"GET {self.url} answered {page.code}{missing} (want 200 and a login form with a CSRF token: is it the"
                " LoginView?)"
            )
        form = urllib.parse.urlencode(
            {"csrfmiddlewaretoken": token, "username": self.user, "password": self.password}
        ).encode()
        headers = self.headers(self.url, jar)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        post = self.settings.request(self.url, headers, data=form)
        jar.update(post.cookies)
        if post.code == "200":
            return False, (
                f"POST {self.url} as {self.user} gave the login form again: wrong password in {self.password_file}, or"
                " the account is inactive or locked"
            )
        if post.code == "403":
            return False, (
                f"POST {self.url} was refused with 403 (CSRF: check CSRF_TRUSTED_ORIGINS for"
                f" {self.settings.host or 'the URL host'})"
            )
        if post.code not in ("301", "302", "303", "307"):
            return False, f"POST {self.url} as {self.user} answered {post.code} (want a redirect after a good login)"
        check = self.settings.request(self.check_url, self.headers(self.check_url, jar))
        if check.code.startswith("2"):
            return True, f"login probe: {self.user} logged in at {self.url} and {self.check_url} answered {check.code}"
        return False, (
            f"{self.user} logged in, but {self.check_url} answered {check.code} with that session (want 2xx: the"
            " session is not accepted)"
        )

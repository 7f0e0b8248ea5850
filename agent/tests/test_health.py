"""health: health URLs (no redirect followed, Host header) and the login probe against a local server."""

import http.server
import threading
import unittest
import urllib.parse
from typing import Dict, List

from pms_agent import health

SEEN: List[Dict[str, str]] = []


class App(http.server.BaseHTTPRequestHandler):
    """A LoginView-like app: CSRF cookie and token on GET, 302 for the right password, /me/ needs the session."""

    def log_message(self, *args: object) -> None:
        pass

    def answer(self, code: int, body: bytes = b"", headers: Dict[str, str] = {}) -> None:  # noqa: B006
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        SEEN.append({"path": self.path, "host": self.headers.get("Host", ""), "cookie": self.headers.get("Cookie", "")})
        if self.path == "/health/":
            self.answer(200 if self.headers.get("Host") == "api.example.test" else 400)
        elif self.path == "/redirect/":
            self.answer(301, headers={"Location": "https://x/"})
        elif self.path == "/login/":
            form = b'<input type="hidden" name="csrfmiddlewaretoken" value="tok123">'
            self.answer(200, form, {"Set-Cookie": "csrftoken=c1; Path=/; Secure"})
        elif self.path == "/me/":
            self.answer(200 if "sessionid=s1" in self.headers.get("Cookie", "") else 401)
        else:
            self.answer(404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(length).decode())
        if "csrftoken=c1" not in self.headers.get("Cookie", "") or form.get("csrfmiddlewaretoken") != ["tok123"]:
            self.answer(403)
        elif form.get("password") == ["right:pw&x"]:
            self.answer(302, headers={"Location": "/", "Set-Cookie": "sessionid=s1; HttpOnly"})
        else:
            self.answer(200, b"form again")


class HealthTest(unittest.TestCase):
    server: http.server.HTTPServer
    base: str

    @classmethod
    def setUpClass(cls) -> None:
        cls.server = http.server.HTTPServer(("127.0.0.1", 0), App)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.base = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.shutdown()
        cls.server.server_close()

    def settings(self) -> health.HttpSettings:
        return health.HttpSettings(host="api.example.test")

    def test_health_with_host_header(self) -> None:
        self.assertIsNone(health.wait_healthy([self.base + "/health/"], self.settings(), 1))
        self.assertEqual(SEEN[-1]["host"], "api.example.test")

    def test_failure_detail_names_url_code_and_host(self) -> None:
        clock = iter([0.0, 0.0, 5.0])
        problem = health.wait_healthy(
            [self.base + "/health/"], health.HttpSettings(), 2, clock=lambda: next(clock), sleep=lambda s: None
        )
        self.assertEqual(problem, ("health-url", f"{self.base}/health/ answered 400 for 2s"))

    def test_redirect_not_followed(self) -> None:
        answer = self.settings().request(self.base + "/redirect/")
        self.assertEqual((answer.code, answer.location), ("301", "https://x/"))
        detail = health.health_detail(self.base + "/redirect/", answer, 3, "")
        self.assertIn("answered 301 redirect to https://x/ (redirects are not followed", detail)

    def test_no_answer_and_other_schemes(self) -> None:
        self.assertEqual(health.HttpSettings().request("http://127.0.0.1:1/").code, "000")
        self.assertEqual(health.HttpSettings().request("file:///etc/passwd").code, "000")

    def test_unit_failure_ends_the_wait(self) -> None:
        problem = health.wait_healthy(
            [self.base + "/nope/"],
            self.settings(),
            30,
            still_ok=lambda: ("stability", "unit is failed/failed, not active"),
        )
        self.assertEqual(problem, ("stability", "unit is failed/failed, not active"))

    def probe(self, password: str) -> health.LoginProbe:
        return health.LoginProbe(
            self.base + "/login/",
            "probe",
            password,
            "/etc/pms-secrets/login-probe",
            self.base + "/me/",
            self.settings(),
        )

    def test_login_probe_logs_in_as_a_browser(self) -> None:
        ok, detail = self.probe("right:pw&x").run()
        self.assertTrue(ok, detail)
        self.assertEqual(detail, f"login probe: probe logged in at {self.base}/login/ and {self.base}/me/ answered 200")

    def test_login_probe_wrong_password(self) -> None:
        ok, detail = self.probe("nope-pw").run()
        self.assertFalse(ok)
        self.assertIn("gave the login form again: wrong password in /etc/pms-secrets/login-probe", detail)
        self.assertNotIn("nope-pw", detail)


if __name__ == "__main__":
    unittest.main()

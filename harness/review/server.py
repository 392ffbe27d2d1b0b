"""The review web page: a small stdlib HTTP server on 127.0.0.1 (`harness review serve RUN`).

    GET  /             the next unvoted case (prompt, answers A and B, buttons, keys a/b/t/x)
    POST /vote         form post of a vote; 303 back to /
    GET  /api/next     the same as JSON: {run_id, reviewer, progress, case}
    POST /api/vote     JSON {suite, case_id, choice: A|B|tie|both_bad, comment} with the token
    GET  /api/summary  403 until this reviewer has voted on every case; then the win rate and
                       which side the candidate was on per case

Every page is rendered by Jinja2 with autoescaping (a model output is text, never markup) under
a Content-Security-Policy that loads nothing and runs only the page's own script (by hash). A
vote must carry the session token placed in the page (a form on another site cannot post one),
the JSON API wants `Content-Type: application/json` (which a cross-site form cannot send),
requests naming another Host are refused (DNS rebinding) while bound to a loopback address, and
a vote whose `Origin` (or `Sec-Fetch-Site`) says it comes from another site is refused. A
connection that sends nothing for `REQUEST_TIMEOUT_S` (a stalled body, say) is dropped, so it
cannot hold a thread. Binding to anything but loopback prints a warning (see `serve`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from harness.errors import HarnessError
from harness.review.session import ReviewSession
from harness.review.votes import MAX_COMMENT, VoteRejected

TEMPLATES = Path(__file__).with_name("templates")
MAX_BODY = 64 * 1024
REQUEST_TIMEOUT_S = 10.0
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _asset(name: str) -> str:
    return (TEMPLATES / name).read_text(encoding="utf-8")


def page_csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    return (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{digest}'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


class ReviewServer(ThreadingHTTPServer):
    """An HTTP server bound to one `ReviewSession`; `url` is where to point the browser."""

    daemon_threads = True

    def __init__(self, session: ReviewSession, host: str = "127.0.0.1", port: int = 0):
        from jinja2 import Environment, FileSystemLoader, select_autoescape

        self.session = session
        self.token = secrets.token_urlsafe(24)
        self.script = _asset("review.js.j2")
        self.css = _asset("review.css")
        self.csp = page_csp(self.script)
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                               trim_blocks=True, lstrip_blocks=True)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), ReviewHandler)
        self.host = host
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def host_allowed(self, header: str | None) -> bool:
        if self.host not in LOOPBACK:
            return True  # bound for others to reach: any name may point here
        name, _, port = (header or "").rpartition(":")
        return port == str(self.port) and name.strip("[]") in LOOPBACK

    def render(self, state: dict, error: str | None = None, reveal: dict | None = None) -> str:
        from markupsafe import Markup

        return self.env.get_template("review.html.j2").render(
            run_id=state["run_id"], reviewer=state["reviewer"], progress=state["progress"], item=state["case"],
            token=self.token, error=error, max_comment=MAX_COMMENT, css=Markup(self.css), script=Markup(self.script),
            summary=(reveal or {}).get("summary"), revealed=(reveal or {}).get("revealed", []),
        )

    def start(self) -> ReviewServer:
        """Serve on a background thread (tests, notebooks); `shutdown()` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="harness-review",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread:
            self._thread.join(timeout=5)


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "harness-review"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S  # the socket's timeout for every read: headers and body

    def log_message(self, format, *args) -> None:  # noqa: A002 - the stdlib's name
        pass  # the terminal shows progress through the page; request lines would drown it

    # ---- responses -------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: dict) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def _html(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), "text/html; charset=utf-8", {"Content-Security-Policy": self.server.csp})

    def _page(self, status: int = 200, error: str | None = None) -> None:
        state = self.server.session.state()
        reveal = self.server.session.reveal() if state["case"] is None else None
        self._html(status, self.server.render(state, error, reveal))

    def _body(self) -> bytes | None:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            n = -1
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def _token_ok(self, given) -> bool:
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self.server.token.encode())

    def _guard(self) -> bool:
        if self.server.host_allowed(self.headers.get("Host")):
            return True
        self._json(HTTPStatus.MISDIRECTED_REQUEST, {"error": "unexpected Host header: open the address the server printed"})
        return False

    def _same_origin(self) -> bool:
        """A browser names where a POST comes from. `Sec-Fetch-Site` decides where it is sent
        (the page's own form posts with `Origin: null`, because of its no-referrer policy);
        otherwise an `Origin` must be this server's, and an opaque one ("null": a sandboxed
        frame, a file) is refused. Clients that send neither (curl, scripts) still need the token."""
        origin = self.headers.get("Origin")
        site = (self.headers.get("Sec-Fetch-Site") or "").lower()
        if site:
            return site in ("same-origin", "none")
        return origin is None or origin == f"http://{self.headers.get('Host', '')}"

    # ---- routes ----------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if not self._guard():
            return
        path = urlsplit(self.path).path
        if path == "/":
            return self._page()
        if path == "/api/next":
            return self._json(200, self.server.session.state())
        if path == "/api/summary":
            try:
                return self._json(200, self.server.session.reveal())
            except VoteRejected as e:
                return self._json(e.status, {"error": str(e)})
        self._json(404, {"error": f"no such page {path!r}"})

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        if not self._guard():
            return
        if not self._same_origin():
            return self._json(403, {"error": "a vote from another site's page is refused: vote on the review page itself"})
        path = urlsplit(self.path).path
        body = self._body()
        if path == "/api/vote":
            return self._api_vote(body)
        if path == "/vote":
            return self._form_vote(body)
        self._json(404, {"error": f"no such endpoint {path!r}"})

    def _api_vote(self, body: bytes | None) -> None:
        if body is None:
            return self._json(413, {"error": f"request body over {MAX_BODY} bytes"})
        if (self.headers.get("Content-Type") or "").split(";")[0].strip() != "application/json":
            return self._json(415, {"error": "send the vote as application/json"})
        try:
            data = json.loads(body or b"null")
        except ValueError:
            return self._json(400, {"error": "body is not valid JSON"})
        if not isinstance(data, dict):
            return self._json(400, {"error": "body must be a JSON object {suite, case_id, choice, comment}"})
        if not self._token_ok(self.headers.get("X-Review-Token") or data.get("token")):
            return self._json(403, {"error": "missing or wrong session token: reload the page"})
        try:
            progress = self.server.session.vote(data.get("suite"), data.get("case_id"), data.get("choice"), data.get("comment"))
        except VoteRejected as e:
            return self._json(e.status, {"error": str(e)})
        self._json(200, {"ok": True, "progress": progress})

    def _form_vote(self, body: bytes | None) -> None:
        if body is None:
            return self._page(413, f"request body over {MAX_BODY} bytes")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
        if not self._token_ok(form.get("token")):
            return self._page(403, "This page's session has expired (the server restarted): the vote was not saved; vote again.")
        try:
            self.server.session.vote(form.get("suite"), form.get("case_id"), form.get("choice"), form.get("comment"))
        except VoteRejected as e:
            if e.status != 409:  # a second submit of the same case: its first vote stands
                return self._page(e.status, f"vote not saved: {e}")
        self._send(303, b"", "text/plain", {"Location": "/"})


def make_server(run_id: str, registry, *, suite: str | None = None, reviewer: str | None = None,
                host: str = "127.0.0.1", port: int = 0, secret: bytes | None = None, run_dir=None) -> ReviewServer:
    """Load the run's cases and bind a server for one reviewer (not yet serving; see `start`)."""
    from harness.registry.environment import default_actor
    from harness.review.items import load_items
    from harness.review.votes import review_secret

    _, items = load_items(run_id, registry, suite, run_dir)
    session = ReviewSession(run_id, items, registry.path, reviewer or default_actor(),
                            secret if secret is not None else review_secret(registry))
    try:
        return ReviewServer(session, host, port)
    except OSError as e:
        raise HarnessError(f"cannot listen on {host}:{port} ({e.strerror or e}): pick another --port, or 0 for any free one") from None


def serve(run_id: str, registry, *, suite: str | None = None, reviewer: str | None = None, host: str = "127.0.0.1",
          port: int = 8765, run_dir=None, announce=print) -> dict:
    """Serve the review page until Ctrl-C; return this reviewer's progress."""
    server = make_server(run_id, registry, suite=suite, reviewer=reviewer, host=host, port=port, run_dir=run_dir)
    progress = server.session.state()["progress"]
    if host not in LOOPBACK:
        announce(f"warning: --host {host} serves this page to every machine that can reach this one, over plain HTTP: "
                 f"anyone who opens it sees the run's prompts and outputs and can vote as {server.session.reviewer}. "
                 "Use the default 127.0.0.1 (and an SSH tunnel for a remote reviewer) unless the network is trusted")
    announce(f"review of {run_id} as {server.session.reviewer}: {progress['voted']}/{progress['total']} cases voted; "
             f"open {server.url}  (Ctrl-C to stop; votes are saved as they are cast)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return server.session.state()["progress"]

"""The review server: votes go to the registry at once with the reviewer and time, only known
cases and choices are accepted, the token is required, outputs are escaped, and the side order is
random per case, stable on reload and absent from the page and API until the reviewer finishes."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.review.conftest import SECRET, XSS

GEN_CASES = [f"m-{i:02d}" for i in range(12)]  # the mini suite's generated cases; mc-* have no output


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def call(srv, path: str, body=None, *, token: str | None = "auto", form: bool = False, headers: dict | None = None):
    """(status, text, response headers) of one request; JSON bodies unless form=True."""
    h = dict(headers or {})
    data = None
    if body is not None:
        if form:
            data = urllib.parse.urlencode(body).encode()
            h.setdefault("Content-Type", "application/x-www-form-urlencoded")
        else:
            data = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
            if token == "auto":
                h["X-Review-Token"] = srv.token
            elif token:
                h["X-Review-Token"] = token
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=data, headers=h, method="POST" if data is not None else "GET")
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def vote(srv, case_id: str, choice: str, **kw):
    return call(srv, "/api/vote", {"suite": "mini", "case_id": case_id, "choice": choice, **kw})


def test_page_and_api_show_the_first_case_without_revealing_sides(server, run):
    status, html, headers = call(server, "/")
    assert status == 200 and "Which answer is better?" in html
    assert "script-src 'sha256-" in headers["Content-Security-Policy"]
    status, text, _ = call(server, "/api/next")
    state = json.loads(text)
    assert state["progress"] == {"voted": 0, "total": 12}
    case = state["case"]
    assert case["case_id"] == "m-00" and set(case) == {"suite", "case_id", "messages", "A", "B"}
    assert case["messages"] == [{"role": "system", "content": "Reply with JSON."},
                                {"role": "user", "content": "Question 0: describe item number 0 briefly."}]
    assert {case["A"], case["B"]} == {run["outputs"]["baseline"]["m-00"], run["outputs"]["candidate"]["m-00"]}
    for source in (html, text):
        for secret in ("candidate", "baseline", run["adapter_hash"], "results_path", str(run["root"])):
            assert secret not in source


def test_side_order_is_random_per_case_stable_and_hidden_until_the_end(server, run, reg):
    from harness.review import make_server

    seen = {}
    for cid in GEN_CASES:
        status, text, _ = call(server, "/api/next")
        case = json.loads(text)["case"]
        assert case["case_id"] == cid
        # a reload shows the same order
        assert json.loads(call(server, "/api/next")[1])["case"] == case
        page = call(server, "/")[1]
        for secret in ("candidate", "baseline", run["adapter_hash"]):
            assert secret not in page and secret not in text
        if run["outputs"]["candidate"][cid] != run["outputs"]["baseline"][cid]:
            seen[cid] = "A" if case["A"] == run["outputs"]["candidate"][cid] else "B"
        assert call(server, "/api/summary")[0] == 403
        assert vote(server, cid, "A")[0] == 200
    assert set(seen.values()) == {"A", "B"}, f"one side for every case: {seen}"

    # the stored votes agree with what was shown: "A" means whichever model was on side A
    rows = {r["case_id"]: r for r in reg.db.query("SELECT * FROM votes")}
    for cid, side in seen.items():
        assert rows[cid]["candidate_side"] == side
        assert rows[cid]["choice"] == ("candidate" if side == "A" else "baseline")

    # finished: now the page and the API reveal the mapping
    status, text, _ = call(server, "/api/summary")
    revealed = json.loads(text)
    assert status == 200 and {r["case_id"]: r["candidate_side"] for r in revealed["revealed"]}.items() >= seen.items()
    assert revealed["summary"]["win_rate"]["n"] == 12
    html = call(server, "/")[1]
    assert "Review finished" in html and "candidate" in html

    # another server over the same registry and secret shows each case on the same side
    other = make_server(run["run_id"], reg, reviewer="bob", secret=SECRET, port=0)
    again = make_server(run["run_id"], reg, reviewer="bob", secret=SECRET, port=0)
    try:
        assert other.session._sides == again.session._sides
        assert other.session._sides != server.session._sides  # per reviewer too, so position bias averages out
    finally:
        other.server_close()
        again.server_close()


def test_votes_are_saved_at_once_with_reviewer_time_and_comment(server, reg):
    status, text, _ = vote(server, "m-00", "tie", comment="both fine")
    assert status == 200 and json.loads(text) == {"ok": True, "progress": {"voted": 1, "total": 12}}
    [row] = list(reg.db.query("SELECT * FROM votes"))
    assert row["reviewer"] == "ann" and row["choice"] == "tie" and row["comment"] == "both fine"
    assert row["created"].endswith("Z") and row["run_id"] == server.session.run_id
    # the next request resumes at the next case (a closed tab loses nothing)
    assert json.loads(call(server, "/api/next")[1])["case"]["case_id"] == "m-01"


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"suite": "mini", "case_id": "nope", "choice": "A"}, 400, "not under review"),
    ({"suite": "mini", "case_id": "mc-0", "choice": "A"}, 400, "not under review"),  # a case without outputs
    ({"suite": "other", "case_id": "m-00", "choice": "A"}, 400, "not under review"),
    ({"suite": "mini", "case_id": ["m-00"], "choice": "A"}, 400, "not under review"),
    ({"suite": "mini", "case_id": "m-00", "choice": "candidate"}, 400, "not one of A, B, tie, both_bad"),
    ({"suite": "mini", "case_id": "m-00", "choice": None}, 400, "not one of"),
    ({"suite": "mini", "case_id": "m-00", "choice": "A", "comment": "x" * 2001}, 400, "longer than"),
])
def test_vote_api_rejects_unknown_cases_and_bad_choices(server, reg, body, status, needle):
    got, text, _ = call(server, "/api/vote", body)
    assert got == status and needle in json.loads(text)["error"]
    assert reg.db.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 0


def test_vote_api_needs_the_token_json_and_one_vote_per_case(server, reg):
    body = {"suite": "mini", "case_id": "m-00", "choice": "A"}
    assert call(server, "/api/vote", body, token=None)[0] == 403
    assert call(server, "/api/vote", body, token="guess")[0] == 403
    assert call(server, "/api/vote", {**body, "token": server.token}, form=True, headers={"Content-Type": "text/plain"})[0] == 415
    assert call(server, "/api/vote", body)[0] == 200
    status, text, _ = call(server, "/api/vote", {**body, "choice": "B"})
    assert status == 409 and "already voted" in json.loads(text)["error"]
    assert [r["choice"] for r in reg.db.query("SELECT choice FROM votes")] != []
    assert reg.db.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 1


def test_requests_for_another_host_are_refused(server):
    assert call(server, "/api/next", headers={"Host": f"evil.example:{server.port}"})[0] == 421
    assert call(server, "/api/next", headers={"Host": f"localhost:{server.port}"})[0] == 200
    assert call(server, "/nothing")[0] == 404


def test_form_vote_redirects_and_outputs_are_escaped(server, run):
    for cid in ("m-00", "m-01"):
        status, _, headers = call(server, "/vote", {"token": server.token, "suite": "mini", "case_id": cid, "choice": "x"}, form=True)
        assert status == 400  # "x" is the key, not the choice
        status, _, headers = call(server, "/vote", {"token": server.token, "suite": "mini", "case_id": cid,
                                                     "choice": "both_bad", "comment": ""}, form=True)
        assert status == 303 and headers["Location"] == "/"
    # a stale or forged form (no token) is refused with the page and a message
    status, html, _ = call(server, "/vote", {"suite": "mini", "case_id": "m-02", "choice": "A"}, form=True)
    assert status == 403 and "not saved" in html
    html = call(server, "/")[1]
    assert "m-02" in html and XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_review_set_refuses_an_edited_suite(run, reg, tmp_path):
    import shutil

    from harness.errors import HarnessError
    from harness.review import load_items
    from tests.review.conftest import MINI

    edited = tmp_path / "mini"
    shutil.copytree(MINI, edited)
    (edited / "suite.yaml").write_text((MINI / "suite.yaml").read_text().replace("Reply with JSON.", "Reply in prose."))
    with pytest.raises(HarnessError, match="no longer match their suite's prompts"):
        load_items(run["run_id"], reg, str(edited))
    _, items = load_items(run["run_id"], reg, str(MINI))
    assert [i.pair.case_id for i in items] == GEN_CASES


def test_votes_from_another_origin_are_refused(server, reg):
    body = {"suite": "mini", "case_id": "m-00", "choice": "A"}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": f"http://127.0.0.1:{server.port + 1}"}):
        status, text, _ = call(server, "/api/vote", body, headers=headers)
        assert status == 403 and "another site" in json.loads(text)["error"], headers
        status, _, _ = call(server, "/vote", {**body, "token": server.token}, form=True, headers=headers)
        assert status == 403, headers
    assert reg.db.execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 0
    assert call(server, "/api/vote", body, headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "same-site"})[0] == 403
    # what Chromium sends for the page's own vote (its no-referrer policy makes the Origin opaque)
    assert call(server, "/api/vote", body, headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})[0] == 200
    assert call(server, "/api/vote", {**body, "case_id": "m-01"}, headers={"Origin": f"http://127.0.0.1:{server.port}"})[0] == 200


def test_a_stalled_request_is_dropped_and_does_not_block_others(server, monkeypatch):
    import socket
    import time

    import harness.review.server as srv_mod

    assert srv_mod.ReviewHandler.timeout == srv_mod.REQUEST_TIMEOUT_S
    monkeypatch.setattr(srv_mod.ReviewHandler, "timeout", 0.5)
    stalled = socket.create_connection(("127.0.0.1", server.port))
    stalled.sendall(b"POST /api/vote HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 1000\r\n\r\n{\"suite\"" % server.port)
    assert call(server, "/api/next")[0] == 200  # served meanwhile
    t0 = time.monotonic()
    stalled.settimeout(10)
    assert stalled.recv(1024) == b""  # the server hung up on it
    assert time.monotonic() - t0 < 5
    stalled.close()


def test_binding_beyond_loopback_warns(run, reg, monkeypatch):
    import harness.review.server as srv_mod

    said = []
    monkeypatch.setattr(srv_mod.ReviewServer, "serve_forever", lambda self, *a, **k: None)
    srv_mod.serve(run["run_id"], reg, reviewer="ann", host="0.0.0.0", port=0, announce=said.append)
    assert said[0].startswith("warning: --host 0.0.0.0 serves this page to every machine")
    said.clear()
    srv_mod.serve(run["run_id"], reg, reviewer="ann", host="127.0.0.1", port=0, announce=said.append)
    assert not any(m.startswith("warning") for m in said)

"""The review page in headless Chromium: vote with the keyboard, reload, find the votes kept;
a model output carrying <script> stays text; the sides stay out of the page until the end."""

from __future__ import annotations



from tests.conftest import BROWSER_MARKS

pytestmark = BROWSER_MARKS


def test_keyboard_votes_survive_a_reload(browser, server, reg, run):
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))

    page.goto(server.url)
    assert page.locator("#progress").inner_text() == "0 / 12 voted"

    def press(key: str) -> None:
        with page.expect_navigation():
            page.keyboard.press(key)

    shown = {}
    for key in ("a", "b", "t", "x"):
        shown[page.locator("input[name=case_id]").input_value()] = (page.locator("#answer-a pre").inner_text(), key)
        press(key)
    # a comment: c focuses it, typed letters stay in it (no vote), Escape leaves, then a key votes
    page.keyboard.press("c")
    page.keyboard.type("a bit terse")
    assert page.locator("#progress").inner_text() == "4 / 12 voted"
    page.keyboard.press("Escape")
    press("b")

    page.reload()
    assert page.locator("#progress").inner_text() == "5 / 12 voted"
    assert page.locator("input[name=case_id]").input_value() == "m-05"
    html = page.content()
    assert "candidate" not in html and "baseline" not in html

    rows = {r["case_id"]: r for r in reg.db.query("SELECT * FROM votes WHERE run_id = ?", [run["run_id"]])}
    assert sorted(rows) == ["m-00", "m-01", "m-02", "m-03", "m-04"]
    assert all(r["reviewer"] == "ann" and r["created"] for r in rows.values())
    assert rows["m-04"]["comment"] == "a bit terse"
    expect = {"t": "tie", "x": "both_bad"}
    for cid, (text_a, key) in shown.items():
        r = rows[cid]
        if key in expect:
            assert r["choice"] == expect[key]
        else:
            picked = "A" if key == "a" else "B"
            assert r["choice"] == ("candidate" if r["candidate_side"] == picked else "baseline")
            side_a = run["outputs"]["candidate" if r["candidate_side"] == "A" else "baseline"][cid]
            assert text_a == side_a.strip() or text_a == side_a
    # case m-02 carried <script>alert(1)</script>: shown as text, never run
    assert not problems, problems
    page.close()

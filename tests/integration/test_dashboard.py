"""The dashboard over HTTP (in process, both backends): who may see it, the session and
its CSRF token, every page, every action, and the offline Swagger UI. The same flows
in a real browser: tests/acceptance/test_dashboard_browser.py."""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from callgate import auth
from callgate.api import create_app
from callgate.clock import Clock
from callgate.gateway import Gateway
from callgate.testing import run_virtual

OK = "+15005550006"
INVALID = "+15005550001"  # permanent failure
BUSY = "+15005550110"  # always busy
PAGES = [
    "/dashboard",
    "/dashboard/lines",
    "/dashboard/jobs",
    "/dashboard/jobs/{job}",
    "/dashboard/batches",
    "/dashboard/batches/{batch}",
    "/dashboard/breaker",
    "/dashboard/webhooks",
]
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Browser:
    """A cookie-keeping HTTP client on the app, as a browser would be (no redirects
    followed unless asked)."""

    gw: Gateway
    token: str
    runner: asyncio.Runner
    client: httpx.AsyncClient

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.runner.run(self.client.get(url, **kw))

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.runner.run(self.client.post(url, **kw))

    def sign_in(self, token: str | None = None) -> httpx.Response:
        r = self.post("/dashboard/signin", data={"key": token or self.token, "next": "/dashboard"})
        assert r.status_code == 303, r.text
        return r

    def csrf(self, page: str = "/dashboard") -> str:
        r = self.get(page)
        assert r.status_code == 200, r.text
        found = CSRF.search(r.text)
        assert found is not None
        return found.group(1)

    def act(self, url: str, back: str = "/dashboard", **form: str) -> str:
        """POST a form with the session's token; the page it redirects to, as text."""
        r = self.post(url, data={"csrf": self.csrf(back), **form})
        assert r.status_code == 303, r.text
        page = self.get(r.headers["location"])
        assert page.status_code == 200, page.text
        return page.text

    def work(self) -> None:
        """Run a worker (virtual time, same database) until nothing is left to do."""

        async def main(clock: Clock) -> None:
            gw = Gateway(self.gw.settings, clock=clock)
            try:
                await gw.run_worker(drain=True)
            finally:
                gw.close()

        run_virtual(main, epoch=time.time() + 1)


@pytest.fixture
def browser(make_settings: Any) -> Iterator[Browser]:
    gw = Gateway(make_settings())
    _, token = auth.create_key(gw.store, "ops", time.time())
    runner = asyncio.Runner()
    transport = httpx.ASGITransport(app=create_app(gw))
    client = httpx.AsyncClient(transport=transport, base_url="http://cg.test")
    yield Browser(gw, token, runner, client)
    runner.run(client.aclose())
    runner.close()
    gw.close()


@pytest.fixture
def signed_in(browser: Browser) -> Browser:
    browser.sign_in()
    return browser


def _batch(gw: Gateway, rows: int = 3, rate: float | None = 1.0) -> int:
    body = "to,body\n" + "".join(f"+1500555020{i},hi\n" for i in range(rows))
    return gw.submit_batch(io.BytesIO(body.encode()), kind="sms", rate=rate).id


def _pages(gw: Gateway) -> list[str]:
    job = gw.send("sms", to=OK, body="hi").job.id
    batch = _batch(gw)
    return [p.format(job=job, batch=batch) for p in PAGES]


# -- who may look ----------------------------------------------------------------------------


def test_an_anonymous_visitor_is_sent_to_sign_in_and_sees_no_data(browser: Browser) -> None:
    for page in _pages(browser.gw):
        r = browser.get(page + "?status=queued")
        assert r.status_code == 303, page
        assert r.headers["location"].startswith("/dashboard/signin?next=" + page)
        assert OK not in r.text
    form = browser.get("/dashboard/signin")
    assert form.status_code == 200
    assert 'type="password"' in form.text
    assert OK not in form.text


def test_signing_in_sets_a_strict_http_only_session_cookie(browser: Browser) -> None:
    r = browser.sign_in()
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("callgate_session=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/dashboard" in cookie
    assert browser.token not in cookie  # the cookie names a session, not the key
    assert browser.get("/dashboard").status_code == 200


def test_a_wrong_key_does_not_sign_in(browser: Browser) -> None:
    r = browser.post("/dashboard/signin", data={"key": "cg_nope", "next": "/dashboard"})
    assert r.status_code == 401
    assert "set-cookie" not in r.headers
    assert "unknown or revoked" in r.text
    assert browser.get("/dashboard").status_code == 303


def test_a_sign_in_posted_from_another_site_is_refused(browser: Browser) -> None:
    r = browser.post(
        "/dashboard/signin",
        data={"key": browser.token, "next": "/dashboard"},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert "set-cookie" not in r.headers


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/v1/jobs"])
def test_sign_in_only_goes_on_to_a_dashboard_page(browser: Browser, target: str) -> None:
    r = browser.post("/dashboard/signin", data={"key": browser.token, "next": target})
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard"


def test_a_bearer_key_sees_the_pages_without_a_session(browser: Browser) -> None:
    job = browser.gw.send("sms", to=OK, body="hi").job.id
    ok = {"Authorization": f"Bearer {browser.token}"}
    r = browser.get(f"/dashboard/jobs/{job}", headers=ok)
    assert r.status_code == 200
    assert OK in r.text
    bad = browser.get("/dashboard/jobs", headers={"Authorization": "Bearer cg_revoked"})
    assert bad.status_code == 401
    assert OK not in bad.text
    # a script's POST needs no CSRF token: no browser adds the header by itself
    r = browser.post(f"/dashboard/jobs/{job}/cancel", headers=ok)
    assert r.status_code == 303
    assert str(browser.gw.jobs.get(job).status) == "canceled"


def test_signing_out_ends_the_session(signed_in: Browser) -> None:
    r = signed_in.post("/dashboard/signout", data={"csrf": signed_in.csrf()})
    assert r.status_code == 303
    assert r.headers["location"] == "/dashboard/signin"
    assert signed_in.get("/dashboard").status_code == 303


def test_a_revoked_key_ends_its_sessions(signed_in: Browser) -> None:
    assert signed_in.get("/dashboard").status_code == 200
    key = next(k for k in signed_in.gw.keys.list() if k.name == "ops")
    assert signed_in.gw.keys.revoke(key.id)
    assert signed_in.get("/dashboard").status_code == 303


# -- CSRF ----------------------------------------------------------------------------------


def test_a_form_without_the_session_token_is_refused(signed_in: Browser) -> None:
    gw = signed_in.gw
    job = gw.send("sms", to=OK, body="hi").job.id
    for data in ({}, {"csrf": "forged"}):
        r = signed_in.post(f"/dashboard/jobs/{job}/cancel", data=data)
        assert r.status_code == 403
    assert str(gw.jobs.get(job).status) == "queued"
    r = signed_in.post("/dashboard/breaker/trip", data={"reason": "x"})
    assert r.status_code == 403
    assert gw.breaker()["state"] == "closed"


def test_a_form_posted_from_another_origin_is_refused(signed_in: Browser) -> None:
    job = signed_in.gw.send("sms", to=OK, body="hi").job.id
    token = signed_in.csrf()
    r = signed_in.post(
        f"/dashboard/jobs/{job}/cancel",
        data={"csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert r.status_code == 403
    assert str(signed_in.gw.jobs.get(job).status) == "queued"


def test_each_session_has_its_own_token(signed_in: Browser, make_settings: Any) -> None:
    first = signed_in.csrf()
    signed_in.client.cookies.clear()
    signed_in.sign_in()
    assert signed_in.csrf() != first
    job = signed_in.gw.send("sms", to=OK, body="hi").job.id
    r = signed_in.post(f"/dashboard/jobs/{job}/cancel", data={"csrf": first})
    assert r.status_code == 403


def offsite(html: str) -> list[str]:
    """The ``src``/``href`` URLs of a page that point at another host (a CDN): an
    absolute or scheme-relative URL. (A search for "cdn" in the page matched a random
    CSRF token now and then.)"""
    urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html, re.IGNORECASE)
    return [u for u in urls if re.match(r"(?:[a-z][a-z0-9+.-]*:)?//", u, re.IGNORECASE)]


# -- pages -----------------------------------------------------------------------------------


def test_every_page_answers_a_signed_in_person(signed_in: Browser) -> None:
    for page in _pages(signed_in.gw):
        r = signed_in.get(page)
        assert r.status_code == 200, (page, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
        assert offsite(r.text) == [], page  # no CDN: every asset and link is ours


def test_a_missing_job_or_batch_is_an_html_404(signed_in: Browser) -> None:
    for page in ("/dashboard/jobs/999999", "/dashboard/batches/999999"):
        r = signed_in.get(page)
        assert r.status_code == 404
        assert r.headers["content-type"].startswith("text/html")


def test_the_jobs_list_filters_by_status_kind_number_and_batch(signed_in: Browser) -> None:
    gw = signed_in.gw
    sms = gw.send("sms", to=OK, body="hi").job.id
    fax = gw.send("fax", to=BUSY, media_url="https://example.org/a.pdf").job.id
    batch = _batch(gw, rows=2)
    in_batch = [j.id for j in gw.jobs.list(batch_id=batch)]
    assert len(in_batch) == 2

    def listed(query: str) -> set[int]:
        r = signed_in.get("/dashboard/jobs" + query)
        assert r.status_code == 200
        return {int(n) for n in re.findall(r'href="/dashboard/jobs/(\d+)"', r.text)}

    assert listed("?kind=fax") == {fax}
    assert listed("?to=%2B15005550006") == {sms}
    assert listed(f"?batch={batch}") == set(in_batch)
    assert listed("?status=queued&kind=sms") == {sms, *in_batch}
    assert listed("?status=failed") == set()
    # lists that read only what an index bounds refresh themselves; the others do not
    assert 'id="jobs" data-live' in signed_in.get("/dashboard/jobs?status=queued").text
    assert 'id="jobs" data-live' in signed_in.get("/dashboard/jobs").text
    for costly in ("?status=failed", "?kind=fax"):
        page = signed_in.get("/dashboard/jobs" + costly).text
        assert 'id="jobs">' in page
        assert "does not refresh itself" in page
    bad = signed_in.get("/dashboard/jobs?status=nonsense")
    assert bad.status_code == 200
    assert "status must be one of" in bad.text


def test_a_job_page_shows_its_attempts_events_and_exchanges(signed_in: Browser) -> None:
    job = signed_in.gw.send("sms", to=INVALID, body="hi").job.id
    signed_in.work()
    page = signed_in.get(f"/dashboard/jobs/{job}").text
    assert re.search(r'id="job-status">failed<', page)
    assert "permanent" in page  # the attempt's outcome
    assert "job.failed" in page  # an event
    assert "Provider exchanges" in page
    # the buttons the job's status allows: a failed job can be retried, not canceled
    assert f'action="/dashboard/jobs/{job}/retry"' in page
    assert f'action="/dashboard/jobs/{job}/cancel"' not in page
    waiting = signed_in.gw.send("sms", to=OK, body="hi").job.id
    page = signed_in.get(f"/dashboard/jobs/{waiting}").text
    assert f'action="/dashboard/jobs/{waiting}/retry"' not in page
    assert f'action="/dashboard/jobs/{waiting}/cancel"' in page


def test_the_lines_show_depth_retries_and_the_job_in_flight(signed_in: Browser) -> None:
    gw = signed_in.gw
    for _ in range(3):
        gw.send("sms", to=OK, body="hi")
    gw.send("sms", to="+15005550007", body="hi")
    page = signed_in.get("/dashboard/lines").text
    row = re.search(r"\+15005550006</a></td>\s*<td>(\d+)</td>", page)
    assert row is not None
    assert row.group(1) == "3"
    assert "+15005550007" in page
    only = signed_in.get("/dashboard/lines?number=%2B15005550007").text
    assert "+15005550007" in only
    assert "+15005550006" not in only


def test_the_overview_counts_waiting_jobs_and_plots_the_day(signed_in: Browser) -> None:
    gw = signed_in.gw
    gw.send("sms", to=OK, body="hi")
    gw.send("fax", to=OK, media_url="https://example.org/a.pdf")
    page = signed_in.get("/dashboard").text
    assert "<svg" in page
    assert "sends per minute (solid line)" in page  # the plot says what it shows
    # (the breaker is off in these tests: tests/unit/test_dashboard_plots.py draws its line)
    row = re.search(r'status=queued">queued</a></th>((?:\s*<td>\d+</td>)+)', page)
    assert row is not None
    assert re.findall(r"\d+", row.group(1)) == ["1", "1", "0", "0", "2"]  # fax sms call request


# -- actions ---------------------------------------------------------------------------------


def test_retry_and_cancel_a_job(signed_in: Browser) -> None:
    gw = signed_in.gw
    job = gw.send("sms", to=INVALID, body="hi").job.id
    signed_in.work()
    assert str(gw.jobs.get(job).status) == "failed"
    page = signed_in.act(f"/dashboard/jobs/{job}/retry", f"/dashboard/jobs/{job}")
    assert f"Job {job} is queued again" in page
    assert str(gw.jobs.get(job).status) == "queued"
    page = signed_in.act(f"/dashboard/jobs/{job}/cancel", f"/dashboard/jobs/{job}")
    assert str(gw.jobs.get(job).status) == "canceled"
    # refused: a delivered job cannot be canceled; the page says why
    done = gw.send("sms", to=OK, body="hi").job.id
    signed_in.work()
    page = signed_in.act(f"/dashboard/jobs/{done}/cancel", f"/dashboard/jobs/{done}")
    assert "Error: " in page
    assert str(gw.jobs.get(done).status) == "delivered"


def test_bulk_retry_of_the_dead_letters(signed_in: Browser) -> None:
    gw = signed_in.gw
    dead = [gw.send("fax", to=BUSY, media_url="https://e.org/a.pdf", max_attempts=1).job.id]
    permanent = gw.send("sms", to=INVALID, body="hi").job.id  # failed, but not a dead letter
    signed_in.work()
    assert gw.jobs.get(dead[0]).reason == "max_attempts"
    page = signed_in.act("/dashboard/jobs/retry-dead-letters", "/dashboard/jobs")
    assert "1 dead letter queued again" in page
    assert str(gw.jobs.get(dead[0]).status) == "queued"
    assert str(gw.jobs.get(permanent).status) == "failed"


def test_pause_resume_cancel_a_batch_and_download_its_results(signed_in: Browser) -> None:
    gw = signed_in.gw
    batch = _batch(gw, rows=3)
    here = f"/dashboard/batches/{batch}"
    assert "is paused" in signed_in.act(f"{here}/pause", here)
    assert str(gw.batches.get(batch).status) == "paused"
    assert "is running" in signed_in.act(f"{here}/resume", here)
    assert str(gw.batches.get(batch).status) == "running"
    signed_in.act(f"{here}/cancel", here)
    assert str(gw.batches.get(batch).status) == "canceled"
    r = signed_in.get(f"{here}/results.csv")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    lines = r.text.strip().splitlines()
    assert len(lines) == 4  # the header and one row per input row
    assert all("canceled" in line for line in lines[1:])
    assert signed_in.post(f"{here}/explode", data={"csrf": signed_in.csrf()}).status_code == 404


def test_the_breaker_trips_and_resets_only_with_a_reason(signed_in: Browser) -> None:
    gw = signed_in.gw
    page = signed_in.act("/dashboard/breaker/trip", "/dashboard/breaker", reason="")
    assert "a reason is required" in page
    assert gw.breaker()["state"] == "closed"
    signed_in.act("/dashboard/breaker/trip", "/dashboard/breaker", reason="storm coming")
    assert gw.breaker()["state"] == "open"
    page = signed_in.act("/dashboard/breaker/reset", "/dashboard/breaker", reason="  ")
    assert gw.breaker()["state"] == "open"
    page = signed_in.act("/dashboard/breaker/reset", "/dashboard/breaker", reason="storm over")
    assert gw.breaker()["state"] == "closed"
    history = [(h["action"], h["detail"]) for h in gw.breaker()["history"]]  # type: ignore[union-attr]
    assert ("reset", "storm over") in history
    assert ("tripped", "storm coming") in history
    assert "storm over" in page
    assert "dashboard: key ops" in page  # who did it


def test_the_allowlist_and_suppressions_are_added_and_removed(signed_in: Browser) -> None:
    gw = signed_in.gw
    back = "/dashboard/breaker"
    signed_in.act("/dashboard/allowlist", back, number="+1202555*", note="the county")
    assert [e["number"] for e in gw.guardrails.allowlist()] == ["+1202555*"]
    page = signed_in.act("/dashboard/allowlist", back, number="not a number")
    assert "Error: " in page
    signed_in.act("/dashboard/allowlist/remove", back, number="+1202555*")
    assert gw.guardrails.allowlist() == []
    signed_in.act("/dashboard/suppressions", back, number="+12025550100", kind="sms")
    [entry] = gw.guardrails.suppressions()
    assert (entry["number"], entry["kind"], entry["reason"]) == ("+12025550100", "sms", "manual")
    signed_in.act("/dashboard/suppressions/remove", back, number="+12025550100", kind="sms")
    assert gw.guardrails.suppressions() == []


def _dead_delivery(browser: Browser) -> int:
    """A webhook delivery that failed for good (written as the sender would)."""
    gw = browser.gw
    gw.send("sms", to=INVALID, body="hi", callback_url="https://hooks.example.com/cg")
    store: Any = gw.store  # the test reaches the store; the dashboard does not
    now = time.time()
    browser.work()
    store.fan_out(now + 10, None)
    [delivery] = gw.deliveries.list()
    with store._write() as c:  # dead-lettered: its attempts used up
        c.execute(
            "UPDATE webhook_deliveries SET status = 'failed', attempts = 8, "
            "last_status_code = 500, last_error = 'HTTP 500' WHERE id = ?",
            (delivery.id,),
        )
    return int(delivery.id)


def test_webhook_dead_letters_are_listed_and_replayed(signed_in: Browser) -> None:
    gw = signed_in.gw
    delivery = _dead_delivery(signed_in)
    page = signed_in.get("/dashboard/webhooks").text
    assert "https://hooks.example.com/cg" in page
    assert f"Replay delivery {delivery}" in page
    signed_in.act(f"/dashboard/webhooks/{delivery}/replay", "/dashboard/webhooks")
    assert gw.deliveries.get(delivery).status == "pending"  # type: ignore[union-attr]
    page = signed_in.act("/dashboard/webhooks/replay", "/dashboard/webhooks", hours="24")
    assert "0 deliveries will be sent again" in page  # it is pending already
    page = signed_in.act("/dashboard/webhooks/replay", "/dashboard/webhooks", hours="x")
    assert "hours must be a number" in page


# -- /docs -------------------------------------------------------------------------------------


def test_swagger_ui_is_served_from_the_package(browser: Browser) -> None:
    docs = browser.get("/docs")
    assert docs.status_code == 200
    assert offsite(docs.text) == []  # no CDN
    for asset in re.findall(r'(?:src|href)="(/docs/assets/[^"]+)"', docs.text):
        r = browser.get(asset)
        assert r.status_code == 200, asset
        assert len(r.content) > 100
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text


# -- alerts (gw.alerts: the rules' open alerts, a banner on every page) -----------------


def test_with_no_alert_open_there_is_no_banner(signed_in: Browser) -> None:
    page = signed_in.get("/dashboard").text
    assert 'id="alerts-h">Open alerts' in page
    assert "None." in page
    assert 'class="alerts"' not in page


def test_open_alerts_are_a_banner_and_an_overview_section(signed_in: Browser) -> None:
    gw = signed_in.gw
    gw.store.raise_alert("oldest_queued", "", "a job has waited 20 min", {}, gw.clock.now())
    job = gw.send("sms", to=OK, body="hi").job.id
    for path in ("/dashboard", "/dashboard/breaker", f"/dashboard/jobs/{job}", "/dashboard/lines"):
        page = signed_in.get(path).text
        assert 'role="alert" aria-label="Open alerts"' in page, path
        assert "oldest_queued: a job has waited 20 min" in page
    assert 'id="alerts-h">Open alerts' in signed_in.get("/dashboard").text

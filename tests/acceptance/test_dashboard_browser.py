"""The dashboard in a real browser: Playwright driving Debian's Chromium against a real
``callgate serve`` on 127.0.0.1, on the default settings (development: the simulator,
its test numbers allowlisted).

A person signs in with the printed key, finds a failed job, presses retry and sees it
delivered; resets a tripped breaker with a reason and sees the reason in the history;
watches a batch's progress move. Every page is photographed under the test's output
(``tmp_path``); with ``CALLGATE_DOCS_SCREENSHOTS=1`` the photographs are also copied to
docs/img/ for docs/operations.md. No sleeps: Playwright's ``expect`` waits for each
condition (the pages refresh themselves every few seconds).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from callgate.testing import ServeProcess

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    # in CI (.ci/run installs it) a missing Chromium fails the tests instead
    pytest.mark.skipif(
        CHROMIUM is None and not os.environ.get("CI"),
        reason="no chromium on PATH (apt-get install chromium)",
    ),
]
#: what Chromium needs in this sandbox: no GPU, no sandbox, and no background traffic
#: (the closed network refuses it, and the browser would wait on it)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
#: busy once, then delivered (the simulator counts per number, per process)
BUSY_ONCE = "+15005550121"
STARTUP = 60.0
WAIT = 20_000  # ms: the longest any one condition may take


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    home = tmp_path_factory.mktemp("serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    env["CALLGATE_DATABASE_URL"] = f"sqlite:///{home / 'callgate.db'}"
    with ServeProcess.start(cwd=home, env=env, timeout=STARTUP) as serve:
        yield serve
        assert serve.stop() == 0


@pytest.fixture(scope="module")
def browser(server: ServeProcess) -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: ServeProcess) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(WAIT)
    page = context.new_page()
    yield page
    context.close()


def api(server: ServeProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.key}"}, timeout=10
    )


def sign_in(page: Any, server: ServeProcess, to: str = "/dashboard") -> None:
    page.goto(to)
    expect(page).to_have_url(re.compile(r"/dashboard/signin\?next="))
    page.get_by_label("API key").fill(server.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(re.escape(to) + "$"))


def shoot(page: Any, tmp_path: Path, name: str) -> Path:
    """A screenshot of the whole page under the test's output (and docs/img/ when asked)."""
    out = tmp_path / f"dashboard-{name}.png"
    page.screenshot(path=str(out), full_page=True)
    assert out.stat().st_size > 5_000
    if os.environ.get("CALLGATE_DOCS_SCREENSHOTS"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, DOCS_IMG / out.name)
    return out


def test_an_anonymous_visitor_sees_the_sign_in_page_and_no_data(
    page: Any, server: ServeProcess, tmp_path: Path
) -> None:
    page.goto("/dashboard/jobs")
    expect(page).to_have_url(re.compile(r"/dashboard/signin"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("table")).to_have_count(0)
    shoot(page, tmp_path, "signin")
    page.get_by_label("API key").fill("cg_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")


def test_a_failed_job_is_retried_and_delivered(
    page: Any, server: ServeProcess, tmp_path: Path
) -> None:
    with api(server) as client:
        r = client.post(
            "/v1/faxes",
            json={"to": BUSY_ONCE, "media_url": "https://example.org/a.pdf", "max_attempts": 1},
        )
        assert r.status_code == 202, r.text
        job_id = r.json()["id"]
    sign_in(page, server, "/dashboard/jobs")
    # the list refreshes itself: the job shows as failed once its only attempt was busy
    link = page.get_by_role("link", name=str(job_id), exact=True)
    expect(page.get_by_role("row").filter(has=link)).to_contain_text("max_attempts")
    # the failed jobs, by the filter form
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    row = page.get_by_role("row").filter(has=link)
    expect(row).to_contain_text("failed")
    shoot(page, tmp_path, "jobs")
    row.get_by_role("link", name=str(job_id), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/dashboard/jobs/{job_id}$"))
    status = page.locator("#job-status")
    expect(status).to_have_text("failed")
    page.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text(f"Job {job_id} is queued again")
    expect(status).to_have_text("delivered")
    expect(page.locator("#job-history")).to_contain_text("busy")
    shoot(page, tmp_path, "job")


def test_a_tripped_breaker_is_reset_with_a_reason(
    page: Any, server: ServeProcess, tmp_path: Path
) -> None:
    with api(server) as client:
        r = client.post("/v1/breaker/trip", json={"reason": "testing the kill switch"})
        assert r.status_code == 200, r.text
    sign_in(page, server, "/dashboard/breaker")
    expect(page.locator("#breaker-state")).to_contain_text("OPEN")
    shoot(page, tmp_path, "breaker")
    reset = page.get_by_role("button", name="Reset the breaker")
    reset.click()  # no reason: the browser refuses the form (required field)
    expect(page.locator("#breaker-state")).to_contain_text("OPEN")
    page.get_by_label("Reason for resetting").fill("false alarm: a planned campaign")
    reset.click()
    expect(page.get_by_role("status")).to_contain_text("sending resumes")
    expect(page.locator("#breaker-state")).to_contain_text("closed")
    history = page.locator("#breaker-history")
    expect(history).to_contain_text("false alarm: a planned campaign")
    expect(history).to_contain_text("testing the kill switch")


def test_a_batch_progress_moves(page: Any, server: ServeProcess, tmp_path: Path) -> None:
    rows = "".join(f"+150055502{i:02d},hello {i}\n" for i in range(20))
    with api(server) as client:
        r = client.post(
            "/v1/batches",
            files={"file": ("people.csv", "to,body\n" + rows, "text/csv")},
            data={"kind": "sms", "rate": "4", "name": "browser test"},
        )
        assert r.status_code == 202, r.text
        batch_id = r.json()["id"]
    sign_in(page, server, f"/dashboard/batches/{batch_id}")
    count = page.locator("#batch-count")
    expect(count).to_contain_text("/ 20 finished")
    first = count.inner_text()
    done = int(first.split("/")[0])
    assert done < 20, first  # 20 rows at 4/s: about five seconds
    # the page refreshes itself: the count moves on without a reload
    expect(count).not_to_have_text(first)
    assert int(count.inner_text().split("/")[0]) > done
    shoot(page, tmp_path, "batch")
    expect(page.locator("#batch-status")).to_have_text("completed", timeout=30_000)
    page.get_by_role("link", name="Batches", exact=True).click()
    expect(page.get_by_role("link", name=str(batch_id), exact=True)).to_be_visible()
    shoot(page, tmp_path, "batches")


@pytest.mark.parametrize(
    ("path", "name", "heading"),
    [
        ("/dashboard", "overview", "Overview"),
        ("/dashboard/lines", "lines", "Lines"),
        ("/dashboard/webhooks", "webhooks", "Webhook deliveries"),
    ],
)
def test_every_other_page_renders_for_a_signed_in_person(
    page: Any, server: ServeProcess, tmp_path: Path, path: str, name: str, heading: str
) -> None:
    with api(server) as client:  # something on the lines: faxes to numbers that stay busy
        for to in ("+15005550110", "+15005550111", "+15005550111", "+15005550129"):
            r = client.post("/v1/faxes", json={"to": to, "media_url": "https://example.org/b.pdf"})
            assert r.status_code == 202, r.text
    sign_in(page, server, path)
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    if name == "overview":
        expect(page.locator("svg.plot")).to_have_count(1)
    if name == "lines":
        expect(page.get_by_role("link", name="+15005550110")).to_be_visible()
    shoot(page, tmp_path, name)


#: every visible form control with no label a screen reader can read (none should be)
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter(el => el.type !== 'hidden')
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map(el => el.outerHTML)"""


def test_the_keyboard_signs_in_and_every_control_has_a_label(
    page: Any, server: ServeProcess
) -> None:
    page.goto("/dashboard/breaker")
    expect(page.get_by_label("API key")).to_be_focused()  # autofocus: type at once
    page.keyboard.type(server.key)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboard/breaker$"))
    for path in (
        "/dashboard/breaker",
        "/dashboard/jobs",
        "/dashboard/lines",
        "/dashboard/webhooks",
    ):
        page.goto(path)
        expect(page.get_by_role("navigation", name="Dashboard")).to_be_visible()
        assert page.evaluate(UNLABELLED) == [], path
    # the skip link is the first stop of the tab order and leads to the content
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()

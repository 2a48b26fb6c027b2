"""The class web page in a real browser (headless Chromium), served by uvicorn on a socket: the trainer's grid,
a trainee's page in another tab of the same browser, a check pressed there showing up on the grid by itself,
and a trainee's link opened from a bundle file. No VM: the class behind the page is the recording double of the
unit tests (tests/unit/web_doubles.py), since what is tested here is what the browser does with the page:
cookies, redirects, forms and the grid's polling script. The real labs are the VM tests' part."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from labkit.classroom.record import FAILING, Cell
from labkit.classroom.tokens import issue_trainee_token, issue_trainer_token
from labkit.web import create_app

from ..unit.web_doubles import CLASS, RecordingService
from .browser import chromium, missing_browser, serve_in_thread, wait_until

pytestmark = pytest.mark.skipif(missing_browser() is not None, reason=missing_browser() or "")

WAIT = 10.0


def status_of(browser: WebDriver, element_id: str) -> str | None:
    return browser.find_element(By.ID, element_id).get_attribute("data-status")


def test_a_check_on_a_trainee_page_shows_there_and_on_the_trainers_grid(tmp_path: Path) -> None:
    service = RecordingService()
    trainer, alice = issue_trainer_token(CLASS), issue_trainee_token(CLASS, "alice")
    with serve_in_thread(create_app(CLASS, service=service)) as base, chromium() as browser:
        browser.get(f"{base}/?token={trainer}")
        assert browser.current_url == f"{base}/"  # the token went into a cookie, out of the address bar
        assert status_of(browser, "cell-bob-apiserver") == "failing"
        assert status_of(browser, "cell-alice-apiserver") == "not tried"
        grid = browser.current_window_handle

        browser.switch_to.new_window("tab")
        browser.get(f"{base}/trainee/alice?token={alice}")
        assert browser.current_url == f"{base}/trainee/alice"
        assert browser.find_element(By.ID, "stage").text == "apiserver"
        browser.find_element(By.ID, "check").click()
        wait_until(browser, lambda b: "check: ✓ verified" in b.find_element(By.ID, "message").text, WAIT)
        trainee_shot = tmp_path / "trainee-page.png"
        browser.save_screenshot(str(trainee_shot))

        browser.switch_to.window(grid)  # no reload: the grid's script polls grid.json
        wait_until(browser, lambda b: status_of(b, "cell-alice-apiserver") == "verified", WAIT)
        grid_shot = tmp_path / "trainer-grid.png"
        browser.save_screenshot(str(grid_shot))
        browser.get(f"{base}/trainee/bob")  # the trainer's cookie opens every trainee's page
        assert browser.find_element(By.ID, "stage").text == "apiserver"

        # the trainer's `class check` finds bob's etcd broken: bob's open page shows it by itself
        browser.switch_to.window(browser.window_handles[1])
        browser.get(f"{base}/trainee/bob")
        assert status_of(browser, "cell-bob-etcd") == "verified"
        bob = next(row for row in service.grid.trainees if row.trainee == "bob")
        bob.cells["etcd"] = Cell(FAILING, "etcd on node1: not running", "2024-04-12T09:40:00+00:00")
        wait_until(browser, lambda b: status_of(b, "cell-bob-etcd") == "failing", WAIT)
        detail = browser.find_element(By.CSS_SELECTOR, "#cell-bob-etcd .detail").text
        assert detail == "etcd on node1: not running"
    assert service.calls.count(("check_trainee", "alice")) == 1
    print(f"screenshots: {trainee_shot} {grid_shot}")


def test_a_trainees_link_from_a_bundle_file_opens_their_page_and_a_forged_post_is_refused(
    tmp_path: Path,
) -> None:
    service = RecordingService()
    alice = issue_trainee_token(CLASS, "alice")
    with serve_in_thread(create_app(CLASS, service=service)) as base, chromium() as browser:
        bundle = tmp_path / "bundle.html"
        bundle.write_text(
            f'<a id="link" href="{base}/trainee/alice?token={alice}">my lab</a>'
            f'<form id="forged" method="post" action="{base}/trainee/alice/reset"><button id="go">go</button></form>'
        )
        browser.get(bundle.as_uri())
        browser.find_element(
            By.ID, "link"
        ).click()  # another site: the cookie must still come with the redirect
        wait_until(browser, lambda b: b.current_url == f"{base}/trainee/alice", WAIT)
        assert browser.find_element(By.ID, "stage").text == "apiserver"

        browser.get(bundle.as_uri())
        browser.find_element(By.ID, "go").click()  # another site's form: no cookie goes with it
        wait_until(browser, lambda b: b.current_url == f"{base}/trainee/alice/reset", WAIT)
        assert "403" in browser.find_element(By.TAG_NAME, "h1").text
    assert ("reset_trainee", "alice") not in service.calls

"""The class web page's access rules and pages, through an in-process ASGI client (no socket, no VM).

The class behind the page is a recording double (tests/unit/web_doubles.py) with fixed data: these tests are
about the web layer's own logic (which token sees and does what on whose lab, what the pages show and escape),
pure logic that needs no lab. The operations themselves are tested on real labs by the VM tests.
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from labkit.classroom.tokens import issue_trainee_token, issue_trainer_token
from labkit.errors import LabError, UsageError
from labkit.web import create_app

from .web_doubles import CLASS, RecordingService, status

ACTIONS = ("check", "reset", "retry")


@pytest.fixture
def service() -> RecordingService:
    return RecordingService()


@pytest.fixture
def client(service: RecordingService) -> TestClient:
    return TestClient(create_app(CLASS, service=service), follow_redirects=False)


@pytest.fixture
def trainer() -> str:
    return issue_trainer_token(CLASS)


@pytest.fixture
def alice() -> str:
    return issue_trainee_token(CLASS, "alice")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- the trainer ---------------------------------------------------------------------------------------


def test_the_trainer_sees_the_grid_with_a_cell_per_trainee_and_stage(
    client: TestClient, trainer: str
) -> None:
    page = client.get("/", headers=bearer(trainer))
    assert page.status_code == 200
    for trainee in ("alice", "bob"):
        for stage in ("etcd", "apiserver"):
            assert f'id="cell-{trainee}-{stage}"' in page.text
    assert 'id="cell-bob-apiserver" class="cell" data-status="failing"' in page.text
    assert "port on node1: &lt;b&gt;8080&lt;/b&gt; closed" in page.text  # a check's output is text, not HTML
    assert "5120 MiB RAM available, 40960 MiB disk free" in page.text
    assert page.text.count("(not isolated)") == 1 and page.text.index("(not isolated)") > page.text.index(
        ">bob<"
    )


def test_the_grid_says_which_trainees_are_on_a_host_that_does_not_answer(
    client: TestClient, service: RecordingService, trainer: str
) -> None:
    bob = service.grid.trainees[1]
    bob.host, bob.host_unreachable = "h2", "host h2 is unreachable over SSH (root@10.251.0.2): timed out"
    page = client.get("/", headers=bearer(trainer)).text
    assert page.count("does not answer") == 1 and "(host h2 does not answer)" in page


def test_the_trainer_gets_the_grid_as_class_status_json_prints_it(client: TestClient, trainer: str) -> None:
    answer = client.get("/grid.json", headers=bearer(trainer))
    assert answer.status_code == 200
    assert answer.json() == status().to_json()


def test_the_trainer_may_open_and_act_on_any_trainee_page(
    client: TestClient, service: RecordingService, trainer: str
) -> None:
    assert client.get("/trainee/bob", headers=bearer(trainer)).status_code == 200
    answer = client.post("/trainee/bob/reset", headers=bearer(trainer))
    assert answer.status_code == 303 and answer.headers["location"] == "/trainee/bob"
    assert service.calls == [("trainee_view", "bob"), ("reset_trainee", "bob")]
    page = client.get("/trainee/bob", headers=bearer(trainer))
    assert "reset (by the trainer): back at etcd-ok in 8.0 s" in page.text


def test_an_unknown_trainee_is_a_404_for_the_trainer(client: TestClient, trainer: str) -> None:
    page = client.get("/trainee/carol", headers=bearer(trainer))
    assert page.status_code == 404
    assert "no trainee &#39;carol&#39;" in page.text and "alice, bob" in page.text
    assert client.post("/trainee/carol/check", headers=bearer(trainer)).status_code == 404


# ---- a trainee -----------------------------------------------------------------------------------------


def test_a_trainee_sees_their_page_with_stage_guide_cells_and_buttons(client: TestClient, alice: str) -> None:
    page = client.get("/trainee/alice", headers=bearer(alice))
    assert page.status_code == 200
    assert "c1-alice" in page.text and 'id="stage">apiserver<' in page.text
    for button in ACTIONS:
        assert f'id="{button}"' in page.text
    assert 'id="message"' in page.text
    assert 'id="cell-alice-etcd" class="cell" data-status="verified"' in page.text
    assert "<h1>Run kube-apiserver</h1>" in page.text  # the guide's Markdown, rendered
    assert "<code>kubectl get nodes</code>" in page.text


def test_raw_html_in_a_guide_is_shown_as_text(client: TestClient, alice: str) -> None:
    page = client.get("/trainee/alice", headers=bearer(alice))
    assert "&lt;script&gt;alert('guide')&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text


@pytest.mark.parametrize("action", ACTIONS)
def test_a_trainee_acts_on_their_own_lab_alone(
    client: TestClient, service: RecordingService, alice: str, action: str
) -> None:
    answer = client.post(f"/trainee/alice/{action}", headers=bearer(alice))
    assert answer.status_code == 303 and answer.headers["location"] == "/trainee/alice"
    assert service.calls == [(f"{action}_trainee", "alice")]
    page = client.get("/trainee/alice", headers=bearer(alice))
    assert '<p id="message" class="message" data-ok="yes">' in page.text
    assert f"{action}: " in page.text and "(by the trainer)" not in page.text


def test_the_result_of_a_check_is_the_message(client: TestClient, alice: str) -> None:
    client.post("/trainee/alice/check", headers=bearer(alice))
    assert "check: ✓ verified" in client.get("/trainee/alice", headers=bearer(alice)).text


def test_a_failed_operation_shows_its_message_not_a_traceback(
    client: TestClient, service: RecordingService, alice: str
) -> None:
    service.failure = UsageError("lab c1-alice has no verified snapshot set to go back to", "ask the trainer")
    answer = client.post("/trainee/alice/reset", headers=bearer(alice))
    assert answer.status_code == 303
    page = client.get("/trainee/alice", headers=bearer(alice)).text
    assert 'data-ok="no">' in page
    assert "lab c1-alice has no verified snapshot set to go back to (ask the trainer)" in page
    assert "Traceback" not in page


@pytest.mark.parametrize("path", ["/", "/grid.json"])
def test_a_trainee_token_does_not_open_the_trainers_pages(client: TestClient, alice: str, path: str) -> None:
    answer = client.get(path, headers=bearer(alice))
    assert answer.status_code == 403
    assert "403" in answer.text and "cell-" not in answer.text


def test_a_trainee_token_does_not_open_another_trainees_page(
    client: TestClient, service: RecordingService, alice: str
) -> None:
    assert client.get("/trainee/bob", headers=bearer(alice)).status_code == 403
    assert client.get("/trainee/bob", params={"token": alice}).status_code == 403
    assert service.calls == []


@pytest.mark.parametrize("action", ACTIONS)
def test_a_trainee_token_does_not_act_on_another_trainees_lab(
    client: TestClient, service: RecordingService, alice: str, action: str
) -> None:
    assert client.post(f"/trainee/bob/{action}", headers=bearer(alice)).status_code == 403
    assert client.post(f"/trainee/bob/{action}", params={"token": alice}).status_code == 403
    assert service.calls == []


def test_a_trainee_polls_their_own_cells_and_no_one_elses(
    client: TestClient, service: RecordingService, alice: str, trainer: str
) -> None:
    client.get("/trainee/alice", params={"token": alice})  # the cookie, as the page's own fetch sends it
    mine = client.get("/trainee/alice/cells.json")
    assert mine.status_code == 200
    assert mine.json() == {
        "stage": "apiserver",
        "cells": {
            "etcd": {"status": "verified", "detail": "", "checked_at": ""},
            "apiserver": {"status": "not tried", "detail": "", "checked_at": ""},
        },
    }
    assert client.get("/trainee/bob/cells.json").status_code == 403
    assert client.get("/trainee/bob/cells.json", headers=bearer(alice)).status_code == 403
    assert service.calls == [("trainee_cells", "alice")]
    bob = client.get("/trainee/bob/cells.json", headers=bearer(trainer)).json()
    assert bob["cells"]["apiserver"]["status"] == "failing"


def test_a_trainee_is_refused_on_an_unknown_trainee_too(client: TestClient, alice: str) -> None:
    assert client.get("/trainee/carol", headers=bearer(alice)).status_code == 403


# ---- wrong and absent tokens ---------------------------------------------------------------------------

PAGES = [
    ("GET", "/"),
    ("GET", "/grid.json"),
    ("GET", "/trainee/alice"),
    ("GET", "/trainee/alice/cells.json"),
] + [("POST", f"/trainee/alice/{action}") for action in ACTIONS]


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_a_wrong_token_gets_403_everywhere(
    client: TestClient, service: RecordingService, trainer: str, alice: str, method: str, path: str
) -> None:
    for wrong in (trainer + "x", alice[:-1], "not-a-token"):
        assert client.request(method, path, headers=bearer(wrong)).status_code == 403
        assert client.request(method, path, params={"token": wrong}).status_code == 403
        client.cookies.set(f"labkit_trainer_{CLASS}", wrong)
        assert client.request(method, path).status_code == 403
        client.cookies.clear()
    assert service.calls == []


@pytest.mark.parametrize(("method", "path"), PAGES)
def test_no_token_gets_403_everywhere(
    client: TestClient, service: RecordingService, trainer: str, method: str, path: str
) -> None:
    answer = client.request(method, path)
    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert service.calls == []


def test_a_token_issued_again_shuts_the_old_one_out(client: TestClient, alice: str) -> None:
    issue_trainee_token(CLASS, "alice")
    assert client.get("/trainee/alice", headers=bearer(alice)).status_code == 403


def test_an_unknown_path_is_a_404_for_the_trainer_and_a_403_for_anyone_else(
    client: TestClient, trainer: str, alice: str
) -> None:
    assert client.get("/admin", headers=bearer(trainer)).status_code == 404
    assert client.get("/admin", headers=bearer(alice)).status_code == 403
    assert client.get("/admin").status_code == 403


# ---- cookies -------------------------------------------------------------------------------------------


def test_a_token_in_the_link_moves_into_a_cookie_and_out_of_the_address(
    client: TestClient, alice: str
) -> None:
    answer = client.get("/trainee/alice", params={"token": alice, "lang": "ja"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/trainee/alice?lang=ja"
    assert alice not in answer.headers["location"]
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"labkit_trainee_{CLASS}={alice};")
    assert "HttpOnly" in cookie and "Path=/trainee/alice" in cookie and "SameSite=lax" in cookie
    assert client.get("/trainee/alice?lang=ja").status_code == 200  # the cookie alone now


def test_the_trainers_and_a_trainees_cookies_live_side_by_side(
    client: TestClient, service: RecordingService, trainer: str, alice: str
) -> None:
    assert client.get("/", params={"token": trainer}).status_code == 303
    assert client.get("/trainee/alice", params={"token": alice}).status_code == 303
    assert client.get("/").status_code == 200
    assert client.get("/trainee/alice").status_code == 200
    assert client.post("/trainee/alice/check").status_code == 303
    assert client.get("/trainee/bob").status_code == 200  # the trainer's cookie opens every page
    assert service.calls[-2:] == [("check_trainee", "alice"), ("trainee_view", "bob")]


def test_a_trainee_cookie_alone_opens_only_that_trainees_page(client: TestClient, alice: str) -> None:
    client.get("/trainee/alice", params={"token": alice})
    assert client.get("/trainee/alice").status_code == 200
    assert client.get("/trainee/bob").status_code == 403
    assert client.get("/").status_code == 403


def test_a_post_from_another_origin_is_refused_even_with_the_cookie(
    client: TestClient, service: RecordingService, alice: str
) -> None:
    client.get("/trainee/alice", params={"token": alice})
    answer = client.post("/trainee/alice/reset", headers={"Origin": "http://127.0.0.1:9999"})
    assert answer.status_code == 403
    assert client.post("/trainee/alice/reset", headers={"Origin": "http://testserver"}).status_code == 303
    assert service.calls == [("reset_trainee", "alice")]  # the refused POST reached no lab


def test_every_answer_says_never_to_cache_frame_or_refer_it(client: TestClient, trainer: str) -> None:
    for answer in (client.get("/", headers=bearer(trainer)), client.get("/")):
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"


def test_the_stylesheet_is_served_from_the_package(client: TestClient) -> None:
    answer = client.get("/static/labkit.css")
    assert answer.status_code == 200 and "data-status" in answer.text


def test_a_page_that_cannot_be_made_says_why_in_one_line(
    service: RecordingService, trainer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = TestClient(create_app(CLASS, service=service), raise_server_exceptions=False)

    def gone(trainee: str, lang: str | None = None) -> None:
        raise LabError("lab c1-alice has no VM for node1", "`labkit class up` clones it again")

    monkeypatch.setattr(service, "trainee_view", gone)
    page = client.get("/trainee/alice", headers=bearer(trainer))
    assert page.status_code == 500
    assert "lab c1-alice has no VM for node1 (`labkit class up` clones it again)" in page.text

    def broken(trainee: str, lang: str | None = None) -> None:
        raise RuntimeError("libvirt went away")

    monkeypatch.setattr(service, "trainee_view", broken)
    page = client.get("/trainee/alice", headers=bearer(trainer))
    assert page.status_code == 500
    assert "internal error: RuntimeError: libvirt went away" in page.text and "Traceback" not in page.text

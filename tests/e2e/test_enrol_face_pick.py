"""Enrolment page in a real browser: a photo of two people of equal standing is refused, the page shows the photo
with its faces boxed and numbered, and clicking a face enrols that face (the right-hand one here: Joe Biden, whom
the entry then matches in his portrait)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_data
from tests.e2e.test_operator_ui import ARGS, CHROMIUM, SHOTS, server, sign_in  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def _enrol(page, base: str, subject: str, photo: Path, reference: str) -> None:  # type: ignore[no-untyped-def]
    """Sign in as ada and send the Watchlists page's enrolment form for one photo."""
    sign_in(page, base, "ada")
    page.goto(f"{base}/watchlists")
    page.fill("#enrol input[name=subject]", subject)
    page.set_input_files("#enrol input[name=photos]", str(photo))
    page.fill("#enrol input[name=legal_basis]", "Code of Criminal Procedure art. 210")
    page.fill("#enrol input[name=authority]", "District court")
    page.fill("#enrol input[name=reference]", reference)
    page.fill("#enrol input[name=expires]", "30d")
    page.click("#enrol button[type=submit]")


def test_two_faces_are_shown_numbered_and_a_click_enrols_one(server: tuple[str, Path, Path]) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    base, _camera, _clip = server
    ex = require_data("face_recognition_examples", "examples")
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            _enrol(page, base, "Joe Biden", ex / "two_people.jpg", "2026/118")
            expect(page.locator("#enrol-result")).to_contain_text("none is clearly the subject", timeout=60_000)
            boxes = page.locator("#enrol-faces .face-box")
            expect(boxes).to_have_count(2)
            expect(boxes.nth(0)).to_have_text("1")
            b1, b2 = boxes.nth(0).bounding_box(), boxes.nth(1).bounding_box()
            assert b1 and b2 and b1["x"] < b2["x"] and b2["width"] > 20  # drawn over the photo, left to right
            page.screenshot(path=str(SHOTS / "enrol-face-pick.png"), full_page=True)
            boxes.nth(1).click()
            expect(page.locator("#enrol-result")).to_contain_text("enrolled", timeout=60_000)
            expect(page.locator("#enrol-result")).to_contain_text("Joe Biden: pending")
        finally:
            browser.close()


def test_the_face_taken_from_a_photo_with_several_is_told_and_stays_on_the_page(
    server: tuple[str, Path, Path],  # noqa: F811
) -> None:
    """Red team: a face taken without the operator choosing it (LFW's Jimmy Carter 0001, a woman at his side) was
    named in the API's warnings but the page showed only "enrolled" and reloaded 1.5 s later: the operator of the web
    page was never told which face was enrolled. The warning is shown and the page is not reloaded under it."""
    from playwright.sync_api import expect, sync_playwright

    base, _camera, _clip = server
    lfw = require_data("lfw", "lfw-deepfunneled")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            _enrol(page, base, "Jimmy Carter", lfw / "Jimmy_Carter" / "Jimmy_Carter_0001.jpg", "2026/119")
            result = page.locator("#enrol-result")
            expect(result).to_contain_text("Jimmy Carter: pending", timeout=60_000)
            expect(result).to_contain_text("face 1 of the photo's 2 was taken as Jimmy Carter's")
            expect(result).to_contain_text("Jimmy_Carter_0001.jpg: ")
            page.wait_for_timeout(2500)  # the page reloaded itself 1.5 s after an enrolment
            expect(result).to_contain_text("was taken as Jimmy Carter's")
        finally:
            browser.close()

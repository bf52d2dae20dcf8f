"""In headless Chromium: Download CSV of a result cut at the row cap gives the whole result."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]


def run_5000(page: Page, integration) -> None:
    page.goto(f"/integrations/{integration.pk}/")
    sql = "select g from generate_series(1, 5000) g"
    code = page.locator(".console .cm-content")
    if code.count():  # the CodeMirror editor, when the page has it
        code.click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(sql)
        page.keyboard.press("Escape")  # closes a completion list, if one opened
    else:
        page.locator(".console textarea[name=sql]").fill(sql)
    page.get_by_role("button", name="Run query").click()
    expect(page.locator("#query-run")).to_have_attribute("data-status", "succeeded", timeout=20_000)


def test_download_csv_of_a_5000_row_result_gets_5000_rows(logged_in_page: Page, integration):
    page = logged_in_page
    run_5000(page, integration)
    page.locator("#query-run").get_by_role("button", name="Download CSV").click()
    export = page.locator("#query-run .export")
    # Progress first (the export is queued, then running), then the link.
    expect(export).to_contain_text(re.compile(r"Export queued…|Exporting…|Download CSV \("))
    link = page.get_by_role("link", name=re.compile(r"Download CSV \(5,000 rows, [\d.]+\s+KB\)"))
    expect(link).to_be_visible(timeout=30_000)
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert re.fullmatch(r"target-run-\d+\.csv", download.suggested_filename)
    rows = list(csv.reader(io.StringIO(open(download.path(), encoding="utf-8-sig").read())))
    assert rows[0] == ["g"] and len(rows) == 5001 and rows[-1] == ["5000"]


def test_download_json_of_the_same_result_gets_5000_objects(logged_in_page: Page, integration):
    page = logged_in_page
    run_5000(page, integration)
    page.locator("#query-run").get_by_role("button", name="Download JSON").click()
    link = page.get_by_role("link", name=re.compile(r"Download JSON \(5,000 rows"))
    expect(link).to_be_visible(timeout=30_000)
    with page.expect_download() as info:
        link.click()
    objects = json.loads(open(info.value.path(), encoding="utf-8").read())
    assert len(objects) == 5000 and objects[0] == {"g": 1}

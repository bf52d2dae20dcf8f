"""The console's result grid and Chart tab in headless Chromium, on a real worker and PostgreSQL:
sorting (numbers as numbers, NULLs last, back to the original order), the Filter box, NULL apart
from the text "NULL", long cells, numbers on the right, the keyboard, and a bar chart drawn
under the page's Content-Security-Policy."""
from __future__ import annotations

import json

import pytest
from playwright.sync_api import Locator, Page, expect

from integrations.templatetags.cells import numeric_column
from tests.e2e.steps import finished_run

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker")]

# qty is integer (JSON numbers), price numeric (text such as "12.25"): both must sort as numbers,
# which text does not ("1, 10, 100, 9"), even compared digit run by digit run ("12.3" before
# "12.25", "-99.00" after "2.50").
ORDERS = """select * from (values
  ('apple', 1, 2.50::numeric, 'NULL'),
  ('pear', 10, 12.25, null),
  ('plum', 9, -99.00, 'ripe'),
  ('fig', 100, 12.3, 'dried'),
  ('kiwi', null, null, 'none yet')
) t(item, qty, price, note)"""


@pytest.fixture
def console_errors(logged_in_page: Page) -> list[str]:
    """Errors the page logs (a CSP violation is one) or throws."""
    errors: list[str] = []
    logged_in_page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    logged_in_page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def run_query(page: Page, integration, sql: str) -> Locator:
    """Open the console, run ``sql`` through the worker, and return its (only) statement's result."""
    if f"/integrations/{integration.pk}/" not in page.url:
        page.goto(f"/integrations/{integration.pk}/")
    code = page.locator(".console .cm-content")
    if code.count():  # the CodeMirror editor, when the page has it
        code.click()
        page.keyboard.press("Control+A")
        page.keyboard.insert_text(sql)
    else:
        page.locator(".console textarea[name=sql]").fill(sql)
    finished_run(page, lambda: page.get_by_role("button", name="Run query").click())
    result = page.locator("#query-run .statement-result")
    expect(result).to_have_count(1)
    return result


def column(result: Locator, index: int) -> list[str]:
    """The texts of a column (1 is the first column after the row number) in the rows shown."""
    return result.locator("tbody tr:visible").evaluate_all(
        f"rows => rows.map(row => row.cells[{index}].textContent)")


def test_numeric_columns_sort_as_numbers_nulls_last_and_return_to_the_original_order(logged_in_page: Page,
                                                                                    integration):
    page = logged_in_page
    result = run_query(page, integration, ORDERS)
    qty = result.get_by_role("columnheader", name="qty")
    sort_qty = qty.get_by_role("button", name="qty")
    expect(qty).not_to_have_attribute("aria-sort", "ascending")

    sort_qty.click()
    expect(qty).to_have_attribute("aria-sort", "ascending")
    expect(qty.locator(".sort-arrow")).to_have_text("▲")
    assert column(result, 2) == ["1", "9", "10", "100", "NULL"]

    sort_qty.click()
    expect(qty).to_have_attribute("aria-sort", "descending")
    expect(qty.locator(".sort-arrow")).to_have_text("▼")
    assert column(result, 2) == ["100", "10", "9", "1", "NULL"]

    sort_qty.click()
    expect(qty).not_to_have_attribute("aria-sort", "descending")
    assert qty.get_attribute("aria-sort") is None
    assert column(result, 2) == ["1", "10", "9", "100", "NULL"]
    # The row numbers stay the rows' own, whatever the order.
    assert column(result, 0) == ["1", "2", "3", "4", "5"]

    # numeric comes as text ("12.25") and still sorts as a number.
    result.get_by_role("button", name="price").click()
    assert column(result, 3) == ["-99.00", "2.50", "12.25", "12.3", "NULL"]
    expect(qty).not_to_have_attribute("aria-sort", "descending")
    # Text sorts as text: a click on another column sorts by it alone.
    result.get_by_role("button", name="item").click()
    assert column(result, 1) == ["apple", "fig", "kiwi", "pear", "plum"]
    expect(result.get_by_role("columnheader", name="price")).not_to_have_attribute("aria-sort", "ascending")


def test_a_column_is_numeric_when_every_cell_but_null_is_a_number():
    """The rule the grid sorts and aligns by (cells as PostgreSQL and MySQL print them)."""
    assert numeric_column([1, "120.50", "-3", "1e+20", ".5", None, "NaN", "-Infinity"])
    assert not numeric_column([1, "$12.50"])  # money is text
    assert not numeric_column([True, False])  # booleans, though ints in Python
    assert not numeric_column([None, None])
    assert not numeric_column(["NaN"])  # not one number in it
    assert not numeric_column(["1", ""])


def test_numbers_are_right_aligned_and_the_row_number_column_is_narrow(logged_in_page: Page, integration):
    result = run_query(logged_in_page, integration, ORDERS)
    align = "el => getComputedStyle(el).textAlign"
    first_row = result.locator("tbody tr").first
    assert first_row.locator("td").nth(2).evaluate(align) == "right"  # qty
    assert first_row.locator("td").nth(3).evaluate(align) == "right"  # price
    assert result.get_by_role("columnheader", name="qty").evaluate(align) == "right"
    assert first_row.locator("td").nth(1).evaluate(align) in ("left", "start")  # item
    assert first_row.locator("td").nth(4).evaluate(align) in ("left", "start")  # note: text, one says "NULL"
    assert result.locator("th.rownum").bounding_box()["width"] < 40


def test_filter_narrows_the_rows_and_says_how_many(logged_in_page: Page, integration):
    result = run_query(logged_in_page, integration, ORDERS)
    count = result.locator(".grid-count")
    expect(count).to_have_text("5 of 5 rows")
    result.get_by_label("Filter").fill("P")  # apple, pear, plum: case does not matter
    expect(count).to_have_text("3 of 5 rows")
    assert column(result, 1) == ["apple", "pear", "plum"]
    result.get_by_label("Filter").fill("12.25")  # any cell of the row
    expect(count).to_have_text("1 of 5 rows")
    assert column(result, 1) == ["pear"]
    result.get_by_label("Filter").fill("no such thing")
    expect(count).to_have_text("0 of 5 rows")
    expect(result.locator("tbody tr:visible")).to_have_count(0)
    result.get_by_label("Filter").fill("")
    expect(count).to_have_text("5 of 5 rows")
    expect(result.locator("tbody tr:visible")).to_have_count(5)


def test_null_reads_apart_from_the_text_null(logged_in_page: Page, integration):
    result = run_query(logged_in_page, integration, ORDERS)
    rows = result.locator("tbody tr")
    text_null = rows.nth(0).locator("td").nth(4)  # apple's note is the text 'NULL'
    real_null = rows.nth(1).locator("td").nth(4)  # pear's note is NULL
    expect(text_null).to_have_text("NULL")
    expect(real_null).to_have_text("NULL")
    expect(real_null).to_have_class("null")
    expect(real_null).to_have_attribute("title", "NULL (no value)")
    expect(text_null).not_to_have_class("null")
    assert text_null.get_attribute("title") is None
    style = "el => { const s = getComputedStyle(el); return [s.fontStyle, s.fontVariantCaps, s.color]; }"
    assert real_null.evaluate(style)[:2] == ["italic", "all-small-caps"]
    assert text_null.evaluate(style)[:2] == ["normal", "normal"]
    assert real_null.evaluate(style)[2] != text_null.evaluate(style)[2]


def test_a_long_cell_is_cut_and_expands_on_click_and_enter(logged_in_page: Page, integration):
    page = logged_in_page
    result = run_query(page, integration, "select 1 as id, repeat('lorem ipsum ', 40) as notes, 'short' as tail")
    cell = result.locator("tbody td").nth(2)
    expect(cell).to_have_class("long")
    page_fits = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"
    # The 480 characters do not widen the table past its box (nor the page): the cell is cut.
    table_fits = "el => el.scrollWidth <= el.clientWidth"
    line = result.locator("tbody td").nth(3).bounding_box()["height"]
    assert cell.bounding_box()["height"] <= line + 1
    assert result.locator(".result-scroll").evaluate(table_fits)
    assert cell.evaluate("el => el.scrollWidth > el.clientWidth")  # cut, with an ellipsis
    assert cell.evaluate("el => getComputedStyle(el).textOverflow") == "ellipsis"

    cell.click()
    expect(cell).to_have_class("long expanded")
    expanded = cell.bounding_box()
    assert expanded["height"] > 2 * line  # wrapped over several lines, all of it shown
    assert cell.evaluate(table_fits)
    assert result.locator(".result-scroll").evaluate(table_fits)
    assert page.evaluate(page_fits)

    cell.focus()
    page.keyboard.press("Enter")
    expect(cell).to_have_class("long")
    assert cell.bounding_box()["height"] <= line + 1


def test_the_keyboard_sorts_and_switches_tabs(logged_in_page: Page, integration):
    page = logged_in_page
    result = run_query(page, integration, ORDERS)
    result.get_by_label("Filter").focus()
    sort_qty = result.get_by_role("button", name="qty")
    for _ in range(5):  # the Filter box, then the headers in order
        page.keyboard.press("Tab")
        if sort_qty.evaluate("el => el === document.activeElement"):
            break
    expect(sort_qty).to_be_focused()
    page.keyboard.press("Enter")
    expect(result.get_by_role("columnheader", name="qty")).to_have_attribute("aria-sort", "ascending")
    page.keyboard.press("Enter")
    expect(result.get_by_role("columnheader", name="qty")).to_have_attribute("aria-sort", "descending")
    assert column(result, 2) == ["100", "10", "9", "1", "NULL"]

    # Shift+Tab back to the tabs: only the selected tab is a tab stop; arrows move between them.
    result.get_by_label("Filter").focus()
    page.keyboard.press("Shift+Tab")
    table_tab = result.get_by_role("tab", name="Table")
    chart_tab = result.get_by_role("tab", name="Chart")
    expect(table_tab).to_be_focused()
    page.keyboard.press("ArrowRight")
    expect(chart_tab).to_be_focused()
    page.keyboard.press("Enter")
    expect(chart_tab).to_have_attribute("aria-selected", "true")
    expect(result.get_by_role("tabpanel", name="Chart")).to_be_visible()
    expect(result.get_by_role("table")).to_be_hidden()
    page.keyboard.press("ArrowLeft")
    expect(table_tab).to_be_focused()
    page.keyboard.press("Enter")
    expect(table_tab).to_have_attribute("aria-selected", "true")
    expect(result.get_by_role("table")).to_be_visible()


def painted_pixels(canvas: Locator, rgb: tuple[int, int, int] | None = None) -> int:
    """How many of the canvas's pixels are painted (or, given ``rgb``, painted about that color)."""
    return canvas.evaluate("""(canvas, rgb) => {
        const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        let count = 0;
        for (let i = 0; i < data.length; i += 4) {
          if (data[i + 3] === 0) continue;
          if (!rgb || (Math.abs(data[i] - rgb[0]) < 8 && Math.abs(data[i + 1] - rgb[1]) < 8
                       && Math.abs(data[i + 2] - rgb[2]) < 8)) count += 1;
        }
        return count;
    }""", list(rgb) if rgb else None)


def accent(page: Page) -> tuple[int, int, int]:
    """The page's --accent color (the first series), as the browser resolves it."""
    return tuple(page.evaluate("""() => {
        const probe = document.createElement("span");
        probe.style.color = "var(--accent)";
        document.body.append(probe);
        const rgb = getComputedStyle(probe).color.match(/\\d+/g).slice(0, 3).map(Number);
        probe.remove();
        return rgb;
    }"""))


def test_the_chart_tab_draws_a_bar_chart_of_the_guessed_columns(logged_in_page: Page, integration, console_errors):
    page = logged_in_page
    page.goto(f"/integrations/{integration.pk}/")
    page.evaluate("""() => { window.chartChanges = [];
        document.addEventListener("chart:change", (event) => window.chartChanges.push(event.detail)); }""")
    result = run_query(page, integration, "select item, qty from (values ('apple', 3), ('pear', 5), ('plum', 8)) t(item, qty)")
    result.get_by_role("tab", name="Chart").click()
    panel = result.get_by_role("tabpanel", name="Chart")
    expect(panel).to_be_visible()
    expect(panel.get_by_label("Chart type")).to_have_value("bar")
    expect(panel.get_by_label("X", exact=True)).to_have_value("item")
    expect(panel.get_by_label("Y", exact=True).get_by_label("qty")).to_be_checked()
    expect(panel).to_contain_text("Charts the 3 rows shown")

    canvas = panel.locator("canvas")
    box = canvas.bounding_box()
    assert box["width"] > 200 and box["height"] > 100
    assert painted_pixels(canvas, accent(page)) > 500  # the bars, in the first series' color
    expected = {"type": "bar", "x": "item", "y": ["qty"]}
    assert json.loads(result.get_attribute("data-chart-config")) == expected
    assert page.evaluate("window.chartChanges") == [expected]

    panel.get_by_label("Chart type").select_option("line")
    expected = {"type": "line", "x": "item", "y": ["qty"]}
    assert page.evaluate("window.chartChanges")[-1] == expected
    assert json.loads(result.get_attribute("data-chart-config")) == expected
    assert painted_pixels(canvas) > 500
    panel.get_by_label("Chart type").select_option("scatter")  # on a text X: one point per item
    assert page.evaluate("window.chartChanges")[-1] == {"type": "scatter", "x": "item", "y": ["qty"]}
    assert painted_pixels(canvas, accent(page)) > 30
    panel.get_by_label("Chart type").select_option("line")

    # The chart draws the rows the table shows: filtered, it says so.
    result.get_by_role("tab", name="Table").click()
    result.get_by_label("Filter").fill("p")
    result.get_by_role("tab", name="Chart").click()
    expect(panel).to_contain_text("Charts the 3 rows shown")
    result.get_by_role("tab", name="Table").click()
    result.get_by_label("Filter").fill("pe")
    result.get_by_role("tab", name="Chart").click()
    expect(panel).to_contain_text("Charts the 1 row shown (the filter hides 2 of 3)")
    panel.get_by_label("Y", exact=True).get_by_label("qty").uncheck()
    expect(panel).to_contain_text("Choose a Y column")
    assert page.evaluate("window.chartChanges")[-1] == {"type": "line", "x": "item", "y": []}
    assert console_errors == []  # no CSP violation, nothing thrown


def test_a_saved_chart_config_opens_the_newest_result_on_its_chart(logged_in_page: Page, integration):
    page = logged_in_page
    page.goto(f"/integrations/{integration.pk}/")
    # What saved queries set when a saved query with a chart is opened.
    page.evaluate("""() => { const holder = document.getElementById("console") || document.body;
        holder.dataset.chart = JSON.stringify({type: "line", x: "item", y: ["price"]}); }""")
    result = run_query(page, integration, ORDERS)
    expect(result.get_by_role("tab", name="Chart")).to_have_attribute("aria-selected", "true")
    panel = result.get_by_role("tabpanel", name="Chart")
    expect(panel.get_by_label("Chart type")).to_have_value("line")
    expect(panel.get_by_label("X", exact=True)).to_have_value("item")
    y = panel.get_by_label("Y", exact=True)
    expect(y.get_by_label("price")).to_be_checked()
    expect(y.get_by_label("qty")).not_to_be_checked()
    assert json.loads(result.get_attribute("data-chart-config")) == {"type": "line", "x": "item", "y": ["price"]}
    assert painted_pixels(panel.locator("canvas")) > 500


def test_screenshots_at_1280_and_390_wide(logged_in_page: Page, integration):
    """Not a check of looks (a person looks at /tmp/grid-*.png): the grid stays inside the page."""
    page = logged_in_page
    sql = ORDERS.replace("'ripe'", "repeat('a very long note that goes on ', 6)")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        result = run_query(page, integration, sql)
        result.get_by_role("button", name="qty").click()
        result.get_by_role("button", name="qty").click()
        assert result.bounding_box()["x"] + result.bounding_box()["width"] <= width
        page.mouse.move(0, 0)  # no hover in the pictures
        result.locator("td.long").click()
        page.screenshot(path=f"/tmp/grid-{width}.png", full_page=True)
        result.screenshot(path=f"/tmp/grid-result-{width}.png")
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=f"/tmp/grid-dark-{width}.png", full_page=True)
        page.emulate_media(color_scheme="light")
        result.get_by_role("tab", name="Chart").click()
        expect(result.locator("canvas")).to_be_visible()
        page.screenshot(path=f"/tmp/grid-chart-{width}.png", full_page=True)
        page.emulate_media(color_scheme="dark")
        page.screenshot(path=f"/tmp/grid-chart-dark-{width}.png", full_page=True)
        page.emulate_media(color_scheme="light")

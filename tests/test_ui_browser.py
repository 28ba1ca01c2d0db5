"""`cas ui` in a real headless Chromium (Debian's ``chromium``), driven by Playwright.

Playwright only drives the system browser (``executable_path``); it never
downloads one.  Screenshots of every page are kept as test artifacts in
``$CAS_TEST_ARTIFACTS/ui`` (tox sets it), else in pytest's temporary directory.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from ui_helpers import build_store, ui_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not os.path.exists(CHROMIUM):
    # CI installs chromium (.ci/run): there the browser tests must run, never skip.
    if os.environ.get("CI"):
        raise RuntimeError("chromium is not installed: .ci/run installs it (apt-get install chromium)")
    pytest.skip("needs Debian's chromium: apt-get install chromium", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    base = os.environ.get("CAS_TEST_ARTIFACTS")
    out = Path(base) / "ui" if base else tmp_path_factory.mktemp("artifacts") / "ui"
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    work = tmp_path_factory.mktemp("ui-browser")
    refs = build_store(work / "store", work)
    with ui_server(work / "store", tmp=work) as server:
        yield server, refs


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        # a persistent context is how Playwright takes a --user-data-dir: a fresh one per run
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=FLAGS, viewport={"width": 1100, "height": 760}
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser, site):
    """A tab that fails the test on any script error, console error or failed request."""
    server, _ = site
    tab = browser.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    tab.on("dialog", lambda d: problems.append(f"a script ran: {d.message}"))  # stored text never runs
    tab.problems = problems
    yield tab
    tab.close()
    assert problems == []


def test_browse_from_the_artifacts_page_to_a_version(page, site, shots):
    server, refs = site
    page.goto(server.url)
    assert page.title() == "Artifacts · cas"
    rows = page.locator("tr.artifact")
    assert rows.count() == 8
    assert page.locator("tr.pipeline th").all_inner_texts() == ["big", "churn", "many", "reports"]
    page.screenshot(path=shots / "artifacts.png")

    page.fill("input[name=q]", "production")
    page.click("form.search button")
    page.wait_for_url(re.compile(r"\?q=production"))
    assert page.locator("tr.artifact").count() == 1

    page.click("tr.artifact a.name")
    page.wait_for_url(re.compile(r"/a/churn/train/model$"))
    assert page.locator("h1").inner_text() == "churn/train/model"
    deleted = page.locator("tr.version.deleted")
    assert deleted.count() == 0
    page.screenshot(path=shots / "versions.png")

    page.click(f"tr[data-version='{refs.model.version}'] td:first-child a")
    page.wait_for_url(re.compile(rf"/v/churn/train/model/{refs.model.version}$"))
    assert page.locator("h1").inner_text() == refs.model.ref
    assert page.locator("table.metadata").inner_text().split() == ["accuracy", "0.91", "stage", "candidate"]
    assert page.locator("ul.downstream li").count() == 0
    assert page.locator("ul.inputs li").count() == 2
    page.screenshot(path=shots / "version.png", full_page=True)


def test_copy_button_copies_the_full_digest(browser, page, site):
    server, refs = site
    browser.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url.rstrip("/"))
    page.goto(server.url + f"v/churn/train/model/{refs.model.version}")
    page.click("button.copy")
    page.wait_for_function("document.querySelector('button.copy').textContent === 'copied'")
    assert page.evaluate("navigator.clipboard.readText()") == str(refs.model.digest)


def test_follow_a_lineage_node(page, site, shots):
    server, refs = site
    page.goto(server.url + f"v/churn/train/model/{refs.model.version}")
    page.click("nav.actions a.lineage")
    page.wait_for_url(re.compile(r"/lineage$"))
    nodes = page.locator("svg g.node")
    assert nodes.count() == 4 + 3  # model, stats, frame, raw@1 and the steps train, features, ingest
    page.screenshot(path=shots / "lineage.png", full_page=True)
    # depth control: all the way up from the model
    page.select_option("select[name=depth]", "all")
    page.select_option("select[name=direction]", "up")
    page.click("form.controls button")
    page.wait_for_url(re.compile(r"depth=all"))
    ids = page.locator("svg g.node").evaluate_all("els => els.map(e => e.dataset.id)")
    assert refs.raw1.ref in ids and refs.model.ref in ids
    box = page.locator(f"svg g.node[data-id='{refs.raw1.ref}'] rect").bounding_box()
    root = page.locator(f"svg g.node[data-id='{refs.model.ref}'] rect").bounding_box()
    assert box["y"] < root["y"]  # ancestors are drawn above
    page.locator(f"svg g.node[data-id='{refs.raw1.ref}'] a").click()
    page.wait_for_url(re.compile(rf"/v/churn/ingest/raw/{refs.raw1.version}$"))
    assert page.locator("h1").inner_text() == refs.raw1.ref


def test_a_failed_step_is_marked_in_the_graph(page, site, shots):
    server, refs = site
    page.goto(server.url + f"v/churn/train/model/{refs.failed_model.version}/lineage")
    failed = page.locator("svg g.node.step.failed")
    assert failed.count() == 1
    stroke = failed.locator("rect").evaluate("r => getComputedStyle(r).stroke")
    assert stroke == "rgb(192, 38, 45)"
    failed.locator("a").click()
    page.wait_for_url(re.compile(rf"/runs/{refs.run2}#step-"))
    section = page.locator(f"#step-{refs.failed_model.step_run_id}")
    assert "loss diverged" in section.inner_text()
    page.screenshot(path=shots / "run.png", full_page=True)


def test_open_a_tree_file_preview(page, site, shots):
    server, refs = site
    page.goto(server.url + f"v/churn/ingest/raw/{refs.raw1.version}")
    page.click("table.listing a:text('data/')")
    page.wait_for_url(re.compile(r"/files/data$"))
    page.screenshot(path=shots / "files.png")
    page.click("table.listing a:text('part-0.csv')")
    page.wait_for_url(re.compile(r"/files/data/part-0.csv$"))
    header = page.locator("table.data thead th").all_inner_texts()
    assert header == ["customer", "tenure", "charges", "churned"]
    assert page.locator("table.data tbody tr").count() == 50
    page.screenshot(path=shots / "preview-csv.png")
    page.goto(server.url + f"v/churn/ingest/raw/{refs.raw1.version}/files/images/logo.png")
    img = page.locator("img.image")
    img.wait_for()
    page.wait_for_function("document.querySelector('img.image').complete")
    assert img.evaluate("i => [i.naturalWidth, i.naturalHeight]") == [40, 24]  # the verified bytes decoded
    page.screenshot(path=shots / "preview-image.png")


def test_runs_and_diff_pages(page, site, shots):
    server, refs = site
    page.goto(server.url + "runs")
    statuses = page.locator("table.runs tr.run td:nth-child(3)").all_inner_texts()
    assert sorted(statuses) == ["completed", "failed"]
    page.screenshot(path=shots / "runs.png")
    page.goto(server.url + "a/churn/ingest/raw")
    page.click("form.diff button")
    page.wait_for_url(re.compile(r"/diff/churn/ingest/raw\?from=1&to=2"))
    assert page.locator("tr.added").count() == 1
    assert page.locator("tr.removed").count() == 1
    assert page.locator("tr.changed").count() == 1
    page.screenshot(path=shots / "diff.png")


def test_hostile_names_and_metadata_stay_text(page, site):
    server, refs = site
    page.goto(server.url + f"v/churn/ingest/raw/{refs.raw1.version}/files/notes")
    names = page.locator("table.listing td:first-child a").all_inner_texts()
    assert "<img src=x onerror=alert(1)>.txt" in names and "weird name #1?.txt" in names
    page.click("text=weird name #1?.txt")
    page.wait_for_url(re.compile(r"weird%20name%20%231%3F.txt$"))
    assert "ünïcode inside" in page.locator("pre.text").inner_text()
    page.goto(server.url + f"v/churn/ingest/raw/{refs.raw1.version}/files/notes")
    page.click("text=<img src=x onerror=alert(1)>.txt")
    assert page.locator("pre.text").inner_text().strip() == "<script>alert(2)</script>"
    page.goto(server.url + f"v/reports/daily/summary/{refs.summary.version}")
    assert "<script>alert(3)</script>" in page.locator("table.metadata").inner_text()


def test_error_pages_render(page, site):
    server, _ = site
    response = page.goto(server.url + "v/churn/train/model/99")
    assert response.status == 404
    assert page.locator("section.error h1").inner_text().startswith("404")
    page.problems.clear()  # the 404 was the point

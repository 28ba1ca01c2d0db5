"""`cas ui` over HTTP: every route, its links, its errors, and what it refuses.

The server is the real command in a subprocess (``cas ui --port 0``); the
store is a real local store built through the public API (tests/ui_helpers.py).
"""

from __future__ import annotations

import http.client
import io
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from ui_helpers import (
    BIG,
    TREE1,
    blob_file,
    build_store,
    corrupt,
    first_line,
    last_chunk_file,
    packed_at,
    start_command,
    ui_server,
)

import cas
from cas.ui.content import SMALL

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    work = tmp_path_factory.mktemp("ui")
    refs = build_store(work / "store", work)
    with ui_server(work / "store", tmp=work) as server:
        with httpx.Client(base_url=server.url, follow_redirects=False, timeout=30) as client:
            yield client, refs, work / "store", server


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src", "action") and v:
                self.hrefs.append(v)


def links(html: str) -> list[str]:
    p = Links()
    p.feed(html)
    return p.hrefs


def get(client, path, status=200):
    r = client.get(path)
    assert r.status_code == status, f"{path}: {r.status_code}\n{r.text[:2000]}"
    return r


def raw_get(base: str, target: str, host: str | None = None) -> tuple[int, bytes]:
    """A request with the target exactly as given (no client normalises ``..`` away)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or parts.netloc)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# -- every page, every link ---------------------------------------------------------------


def test_every_link_from_the_front_page_leads_somewhere(site):
    """Crawl the site from / (bounded): every link, image and form target answers, none errs."""
    client, refs, _, server = site
    seen: set[str] = set()
    queue = ["/"]
    kinds: set[str] = set()
    while queue and len(seen) < 400:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        try:
            r = client.get(path)
        except httpx.HTTPError as e:
            raise AssertionError(f"{path}: {e}; server said: {server.errors()}") from None
        assert r.status_code in (200, 307), f"{path} -> {r.status_code}: {r.text[:500]}"
        if r.status_code == 307:
            target = r.headers["location"]
            assert re.search(r"/\d+(/|$|\?)", target), target  # aliases redirect to numbered URLs
            queue.append(target)
            continue
        kinds.add(path.split("/")[1].split("?")[0])
        if r.headers["content-type"].startswith("text/html"):
            for href in links(r.text):
                url = urljoin(path, href.split("#")[0])
                if url.startswith("/") and not url.startswith("//") and url not in seen:
                    queue.append(url)
    assert {"", "a", "v", "runs", "static", "diff"} <= kinds, kinds
    assert server.errors() == ""  # no traceback on the server side


def test_artifacts_page_groups_pipelines_steps_and_artifacts(site):
    client, refs, _, _ = site
    html = get(client, "/").text
    for name in ("churn/ingest/raw", "churn/features/stats", "churn/train/model", "reports/daily/chart"):
        assert f'data-name="{name}"' in html
    assert '<tr class="pipeline"><th colspan="6">churn</th></tr>' in html
    assert '<tr class="step"><th colspan="6">churn/features</th></tr>' in html
    assert f'href="/v/churn/train/model/{refs.failed_model.version}">v{refs.failed_model.version}<' in html  # latest
    assert 'href="/v/churn/train/model/production">production<' in html
    assert "8 artifacts" in html


@pytest.mark.parametrize(
    "q,found,absent",
    [
        ("daily", {"reports/daily/chart", "reports/daily/summary"}, {"churn/ingest/raw"}),
        ("production", {"churn/train/model"}, {"churn/ingest/raw"}),  # an alias
        ("accuracy", {"churn/train/model"}, {"reports/daily/chart"}),  # a metadata key
        ("rows=131", {"churn/ingest/raw"}, {"churn/train/model"}),  # key=value
        ("owner=ana", {"reports/daily/summary"}, {"churn/ingest/raw"}),
        ("no-such-thing", set(), {"churn/ingest/raw"}),
    ],
)
def test_search_by_name_alias_and_metadata(site, q, found, absent):
    client, *_ = site
    html = get(client, f"/?q={q}").text
    shown = set(re.findall(r'data-name="([^"]+)"', html))
    assert shown == found
    assert not shown & absent
    if not found:
        assert "No artifact matches" in html


def test_versions_page_shows_digest_size_aliases_producer_and_greys_deleted(site):
    client, refs, _, _ = site
    html = get(client, "/a/churn/train/model").text
    m = refs.model
    assert f'data-copy="{m.digest}"' in html and f">{m.digest.short}</code>" in html
    assert '<span class="alias">production</span>' in html
    assert f"/runs/{refs.run1}#step-{m.step_run_id}" in html
    assert '<span class="status failed">failed</span>' in html  # v2's producer
    summary = get(client, "/a/reports/daily/summary").text
    assert re.search(r'<tr class="version deleted" data-version="1">', summary)
    assert re.search(r'<tr class="version" data-version="2">', summary)


def test_versions_page_is_paged_newest_first(site):
    client, *_ = site
    first = get(client, "/a/many/versions/counter").text
    numbers = [int(n) for n in re.findall(r'data-version="(\d+)"', first)]
    assert numbers == list(range(120, 20, -1))
    second = get(client, "/a/many/versions/counter?page=2").text
    assert [int(n) for n in re.findall(r'data-version="(\d+)"', second)] == list(range(20, 0, -1))
    assert 'rel="prev"' in second and 'rel="next"' not in second
    get(client, "/a/many/versions/counter?page=3", 400)
    get(client, "/a/many/versions/counter?page=x", 400)


def test_version_page_metadata_producer_inputs_downstream_download(site):
    client, refs, _, _ = site
    html = get(client, f"/v/churn/features/stats/{refs.stats.version}").text
    assert "<th>digest</th>" in html and str(refs.stats.digest) in html
    assert f'href="/v/churn/ingest/raw/{refs.raw1.version}">churn/ingest/raw@{refs.raw1.version}<' in html  # input
    assert f'href="/v/churn/train/model/{refs.model.version}">churn/train/model@{refs.model.version}<' in html  # downstream
    assert ">features</a>" in html
    assert "&#34;columns&#34;" in html  # the JSON preview, pretty-printed and escaped
    model = get(client, f"/v/churn/train/model/{refs.model.version}").text
    assert "<th>accuracy</th><td>0.91</td>" in model and "<th>stage</th><td>candidate</td>" in model
    download = get(client, f"/v/churn/train/model/{refs.model.version}/raw?download=1")
    assert download.content == b"weights-v1" * 10
    assert download.headers["content-disposition"].startswith("attachment")
    assert download.headers["content-type"] == "application/octet-stream"


def test_a_tree_downloads_as_a_tar_of_verified_files(site):
    client, refs, _, _ = site
    r = get(client, f"/v/churn/ingest/raw/{refs.raw1.version}/raw")
    assert r.headers["content-type"] == "application/x-tar"
    assert r.headers["content-disposition"] == f'attachment; filename="raw-v{refs.raw1.version}.tar"'
    with tarfile.open(fileobj=io.BytesIO(r.content)) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    top = f"raw-v{refs.raw1.version}/"
    assert set(got) == {top + p for p in TREE1}
    assert got[top + "config.json"] == b'{"source":"crm","rows":120,"nested":{"ok":true}}'


def test_alias_and_latest_redirect_to_the_numbered_url(site):
    client, refs, _, _ = site
    r = get(client, "/v/churn/train/model/production", 307)
    assert r.headers["location"] == f"/v/churn/train/model/{refs.model.version}"
    r = get(client, "/v/churn/ingest/raw/latest/files/data/part-0.csv", 307)
    assert r.headers["location"] == f"/v/churn/ingest/raw/{refs.raw2.version}/files/data/part-0.csv"


def test_tree_file_browser_lists_directories_with_sizes(site):
    client, refs, _, _ = site
    v = refs.raw1.version
    root = get(client, f"/v/churn/ingest/raw/{v}/files").text
    for d in ("data/", "deep/", "images/", "notes/"):
        assert f">{d}</a>" in root
    assert f'href="/v/churn/ingest/raw/{v}/files/config.json">config.json<' in root
    deep = get(client, f"/v/churn/ingest/raw/{v}/files/deep/a").text
    assert f'href="/v/churn/ingest/raw/{v}/files/deep/a/b">b/<' in deep
    data = get(client, f"/v/churn/ingest/raw/{v}/files/data").text
    sizes = {f: len(b) for f, b in [("part-0.csv", None), ("part-1.csv", None)] for b in [b""]}
    assert sizes and "part-0.csv" in data and "part-1.csv" in data


def test_previews_of_text_json_csv_parquet_and_images(site):
    client, refs, _, _ = site
    v = refs.raw1.version
    csv_page = get(client, f"/v/churn/ingest/raw/{v}/files/data/part-0.csv").text
    assert "<th>customer</th><th>tenure</th><th>charges</th><th>churned</th>" in csv_page
    assert csv_page.count("<tr><td>c") == 50  # the first rows only
    md = get(client, f"/v/churn/ingest/raw/{v}/files/notes/readme.md").text
    assert '<pre class="text"># raw data\nexported nightly\n</pre>' in md
    js = get(client, f"/v/churn/ingest/raw/{v}/files/config.json").text
    assert '<pre class="json">{\n  &#34;source&#34;: &#34;crm&#34;' in js
    frame = get(client, f"/v/churn/features/frame/{refs.frame.version}").text
    assert "<th>tenure</th><th>charges</th>" in frame and "<td>41.25</td>" in frame
    img = get(client, f"/v/churn/ingest/raw/{v}/files/images/logo.png").text
    assert f'<img class="image" src="/v/churn/ingest/raw/{v}/raw/images/logo.png"' in img
    raw = get(client, f"/v/churn/ingest/raw/{v}/raw/images/logo.png")
    assert raw.headers["content-type"] == "image/png" and raw.content.startswith(b"\x89PNG")
    assert raw.headers["content-security-policy"] == "sandbox"
    bad = get(client, f"/v/churn/ingest/raw/{v}/files/tables/bad.parquet").text
    assert "not readable as Parquet" in bad and "<table class=\"data\">" not in bad
    chart = get(client, f"/v/reports/daily/chart/{refs.chart.version}").text
    assert f'src="/v/reports/daily/chart/{refs.chart.version}/raw"' in chart


def test_names_and_content_are_escaped_and_quoted(site):
    client, refs, _, _ = site
    v = refs.raw1.version
    listing = get(client, f"/v/churn/ingest/raw/{v}/files/notes").text
    assert "<img src=x" not in listing and "&lt;img src=x onerror=alert(1)&gt;.txt" in listing
    assert f'href="/v/churn/ingest/raw/{v}/files/notes/weird%20name%20%231%3F.txt"' in listing
    weird = get(client, f"/v/churn/ingest/raw/{v}/files/notes/weird%20name%20%231%3F.txt").text
    assert "ünïcode inside" in weird
    hostile = get(client, f"/v/churn/ingest/raw/{v}/files/notes/%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.txt").text
    assert "<script>" not in hostile and "&lt;script&gt;alert(2)&lt;/script&gt;" in hostile
    summary = get(client, f"/v/reports/daily/summary/{refs.summary.version}").text
    assert "<script>alert(3)" not in summary and "&lt;script&gt;alert(3)&lt;/script&gt;" in summary


def test_head_answers_like_get_without_a_body(site):
    client, refs, _, _ = site
    r = client.head(f"/v/churn/train/model/{refs.model.version}/raw")
    assert r.status_code == 200 and r.content == b"" and r.headers["content-length"] == str(refs.model.size)


def test_big_content_is_streamed_whole_and_previewed_in_part(site):
    client, refs, _, _ = site
    assert refs.big.size == BIG > SMALL
    page = get(client, f"/v/big/blob/file/{refs.big.version}").text
    assert "first 65536 characters shown" in page
    with client.stream("GET", f"/v/big/blob/file/{refs.big.version}/raw") as r:
        assert r.status_code == 200 and int(r.headers["content-length"]) == BIG
        sizes = [len(chunk) for chunk in r.iter_raw()]
    assert sum(sizes) == BIG and len(sizes) > 1  # arrived in pieces, not as one body


def test_lineage_graph_up_down_and_depth(site):
    client, refs, _, _ = site
    m = refs.model
    full = get(client, f"/v/churn/train/model/{m.version}/lineage?depth=all&direction=up").text
    nodes = re.findall(r'<g class="node ([^"]+)" data-id="([^"]+)"', full)
    ids = {i for _, i in nodes}
    assert {m.ref, refs.stats.ref, refs.frame.ref, refs.raw1.ref} <= ids
    assert sum(1 for c, _ in nodes if c.startswith("step")) == 3
    assert f'<a href="/v/churn/ingest/raw/{refs.raw1.version}">' in full  # a version node is a link
    assert f'<a href="/runs/{refs.run1}#step-' in full  # so is a step node
    shallow = get(client, f"/v/churn/train/model/{m.version}/lineage?depth=1&direction=up").text
    assert refs.raw1.ref not in shallow and refs.stats.ref in shallow
    down = get(client, f"/v/churn/ingest/raw/{refs.raw1.version}/lineage?direction=down&depth=all").text
    assert m.ref in down
    failed = get(client, f"/v/churn/train/model/{refs.failed_model.version}/lineage").text
    assert re.search(r'<g class="node step failed"', failed)
    assert 'class="edge failed"' in failed
    for bad in ("depth=0", "depth=x", "depth=1001", "direction=sideways"):
        get(client, f"/v/churn/train/model/{m.version}/lineage?{bad}", 400)


def test_a_lineage_too_big_to_draw_is_drawn_closer(site, monkeypatch):
    """In process (the app over an open store) to lower the node limit."""
    from starlette.testclient import TestClient

    from cas.ui import create_app, pages

    _, refs, root, _ = site
    monkeypatch.setattr(pages, "MAX_NODES", 5)
    with cas.open_store(root, create=False) as store:
        app = create_app(store, refresh=0, allowed_hosts=["testserver"])
        with TestClient(app) as client:
            html = get(client, f"/v/churn/train/model/{refs.model.version}/lineage?direction=up&depth=all").text
        app.state.worker.close()
    assert "shown at depth 1" in html
    assert len(re.findall(r'<g class="node ', html)) == 4  # the model, its step, that step's two inputs


def test_redirects_keep_the_query(site):
    client, refs, _, _ = site
    r = get(client, "/v/churn/train/model/production/lineage?depth=1&direction=up", 307)
    assert r.headers["location"] == f"/v/churn/train/model/{refs.model.version}/lineage?depth=1&direction=up"


def test_runs_list_and_detail(site):
    client, refs, _, _ = site
    html = get(client, "/runs").text
    assert f'href="/runs/{refs.run1}"' in html and f'href="/runs/{refs.run2}"' in html
    failed_only = get(client, "/runs?status=failed").text
    assert refs.run2 in failed_only and refs.run1 not in failed_only
    detail = get(client, f"/runs/{refs.run2}").text
    assert '<span class="status failed">failed</span>' in detail
    assert "RuntimeError: loss diverged" in detail
    assert "<th>lr</th><td>0.5</td>" in detail
    assert f'id="step-{refs.failed_model.step_run_id}"' in detail
    assert f'href="/v/churn/ingest/raw/{refs.raw2.version}"' in detail  # the failed step's input


def test_diff_of_two_tree_versions(site):
    client, refs, _, _ = site
    html = get(client, f"/diff/churn/ingest/raw?from={refs.raw1.version}&to={refs.raw2.version}").text
    assert "1 added" in html and "1 removed" in html and "1 changed" in html and "7 unchanged" in html
    assert re.search(r'<tr class="added">.*data/part-2.csv', html)
    assert re.search(r'<tr class="removed">.*deep/a/b/c.txt', html)
    assert re.search(r'<tr class="changed">.*data/part-1.csv', html)
    same = get(client, f"/diff/churn/ingest/raw?from={refs.raw1.version}&to={refs.raw1.version}").text
    assert "hold the same files" in same
    assert get(client, "/diff/churn/ingest/raw").text.count("selected") == 2  # defaults: previous -> latest


def test_diff_of_two_blob_versions(site):
    """A blob compares as one file (path "") named after the artifact, linked to its version."""
    client, _, _, _ = site
    html = get(client, "/diff/many/versions/counter?from=1&to=12").text
    assert "0 added" in html and "0 removed" in html and "1 changed" in html and "0 unchanged" in html
    row = re.search(r'<tr class="changed">.*?</tr>', html).group(0)
    assert 'href="/v/many/versions/counter/12"' in row and ">many/versions/counter</a>" in row
    assert "<td class=\"num\">6 B</td><td class=\"num\">7 B</td>" in row
    same = get(client, "/diff/many/versions/counter?from=3&to=3").text
    assert "1 unchanged" in same and "hold the same files" in same and '<tr class="changed">' not in same


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path,status",
    [
        ("/a/no/such/artifact", 404),
        ("/v/churn/train/model/99", 404),
        ("/v/churn/train/model/staging", 404),
        ("/v/churn/ingest/raw/1/files/no/such/file", 404),
        ("/v/churn/train/model/1/files", 404),  # a blob has no files
        ("/runs/no-such-run", 404),
        ("/diff/no/such/artifact", 404),
        ("/nowhere", 404),
        ("/a/Bad name/x/y", 400),
        ("/a/-x/y/z", 400),
        ("/v/churn/train/model/-1", 400),
        ("/v/churn/train/model/0", 400),
    ],
)
def test_unknown_and_invalid_names_are_error_pages(site, path, status):
    client, *_ = site
    r = client.get(path)
    assert r.status_code == status, r.text[:500]
    assert f'data-status="{status}"' in r.text


@pytest.mark.parametrize(
    "target",
    [
        "/v/churn/ingest/raw/1/files/../../../../etc/passwd",
        "/v/churn/ingest/raw/1/raw/../../../../etc/passwd",
        "/v/churn/ingest/raw/1/raw/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/v/churn/ingest/raw/1/files/data/%2e%2e/config.json",
        "/v/churn/ingest/raw/1/raw//etc/passwd",
        "/v/churn/ingest/raw/1/raw/data%5c..%5c..%5cetc%5cpasswd",
        "/v/churn/ingest/raw/1/raw/data%00.csv",
        "/a/../../../etc/passwd",
        "/a/%2e%2e/%2e%2e/passwd",
        "/v/churn/..%2f..%2fetc/passwd/1",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fpages.py",
    ],
)
def test_hostile_paths_are_refused(site, target):
    _, _, _, server = site
    status, body = raw_get(server.url, target)
    assert status in (400, 404), (status, body[:300])
    assert b"root:" not in body and b"import" not in body


def test_a_foreign_host_header_is_refused(site):
    """No DNS rebinding: a page on another site that resolves to 127.0.0.1 gets nothing."""
    _, _, _, server = site
    status, body = raw_get(server.url, "/", host="attacker.example:80")
    assert status == 400 and b"churn" not in body


def test_read_only_no_method_writes(site):
    client, _, store_root, _ = site
    before = sorted(p.relative_to(store_root) for p in store_root.rglob("*") if "index.sqlite" not in p.name)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/", "/a/churn/train/model", "/v/churn/train/model/1", "/v/churn/train/model/1/raw"):
            r = client.request(method, path)
            assert r.status_code == 405, (method, path, r.status_code)
    after = sorted(p.relative_to(store_root) for p in store_root.rglob("*") if "index.sqlite" not in p.name)
    assert before == after


# -- verified content ---------------------------------------------------------------------


@pytest.fixture
def damaged(tmp_path):
    refs = build_store(tmp_path / "store", tmp_path)
    with ui_server(tmp_path / "store", tmp=tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client, refs, tmp_path / "store"


@pytest.fixture
def damaged2(tmp_path):
    """The same store, format 2: the trees' small files are in packs, the big blob is chunked."""
    refs = build_store(tmp_path / "store", tmp_path, format=2)
    with ui_server(tmp_path / "store", tmp=tmp_path) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield client, refs, tmp_path / "store"


@pytest.mark.usefixtures("format1_stores")  # corrupts format 1's loose blobs; format 2: the _format2 test below it
def test_a_corrupt_blob_is_an_error_page_never_its_bytes(damaged):
    client, refs, root = damaged
    corrupt(blob_file(root, refs.model.digest), 3)
    for path in (f"/v/churn/train/model/{refs.model.version}/raw", f"/v/churn/train/model/{refs.model.version}/raw?download=1"):
        r = client.get(path)
        assert r.status_code == 500 and "Integrity error" in r.text
        assert b"weights" not in r.content
    page = client.get(f"/v/churn/train/model/{refs.model.version}")
    assert page.status_code == 500 and "Integrity error" in page.text  # its preview is not shown either
    with cas.open_store(root) as store:
        f = next(d for p, d, _ in store.get_artifact_version(refs.raw1.ref).files() if p == "data/part-0.csv")
    corrupt(blob_file(root, f), 10)
    r = client.get(f"/v/churn/ingest/raw/{refs.raw1.version}/files/data/part-0.csv")
    assert r.status_code == 500 and "customer" not in r.text
    assert client.get(f"/v/churn/ingest/raw/{refs.raw1.version}/raw/data/part-0.csv").status_code == 500


def test_a_flipped_byte_in_a_pack_is_an_error_page_never_its_bytes_format2(damaged2):
    """Format 2: data/part-0.csv is a range of a pack; one byte flipped inside that range is
    an integrity error on its page and its raw route, not content (nor its neighbours')."""
    client, refs, root = damaged2
    with cas.open_store(root) as store:
        assert store.format == 2
        f = next(d for p, d, _ in store.get_artifact_version(refs.raw1.ref).files() if p == "data/part-0.csv")
    pack, offset, length = packed_at(root, f)
    assert length == len(TREE1["data/part-0.csv"])
    corrupt(pack, offset + 10)
    r = client.get(f"/v/churn/ingest/raw/{refs.raw1.version}/files/data/part-0.csv")
    assert r.status_code == 500 and "Integrity error" in r.text and "customer" not in r.text
    raw = client.get(f"/v/churn/ingest/raw/{refs.raw1.version}/raw/data/part-0.csv")
    assert raw.status_code == 500 and b"customer" not in raw.content
    assert client.get(f"/v/churn/ingest/raw/{refs.raw1.version}/raw/config.json").content == TREE1["config.json"]  # same pack, intact range


@pytest.mark.usefixtures("format1_stores")  # corrupts format 1's loose blobs; format 2: the _format2 test below it
def test_a_tree_with_a_corrupt_file_never_arrives_as_a_whole_archive(damaged):
    client, refs, root = damaged
    with cas.open_store(root) as store:
        digest = next(d for p, d, _ in store.get_artifact_version(refs.raw1.ref).files() if p == "notes/readme.md")
    corrupt(blob_file(root, digest), 2)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"/v/churn/ingest/raw/{refs.raw1.version}/raw")


def test_a_tree_with_a_flipped_byte_in_its_pack_never_arrives_as_a_whole_archive_format2(damaged2):
    client, refs, root = damaged2
    with cas.open_store(root) as store:
        digest = next(d for p, d, _ in store.get_artifact_version(refs.raw1.ref).files() if p == "notes/readme.md")
    pack, offset, _ = packed_at(root, digest)
    corrupt(pack, offset + 2)
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"/v/churn/ingest/raw/{refs.raw1.version}/raw")


@pytest.mark.usefixtures("format1_stores")  # corrupts format 1's loose blobs; format 2: the _format2 test below it
def test_a_corrupt_big_blob_never_arrives_whole(damaged):
    """Streamed content holds its last block back until the digest checks out:
    a corrupt blob ends the response short of its Content-Length."""
    client, refs, root = damaged
    corrupt(blob_file(root, refs.big.digest), BIG - 100)  # in the very last block
    received = 0
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", f"/v/big/blob/file/{refs.big.version}/raw") as r:
            assert int(r.headers["content-length"]) == BIG
            for chunk in r.iter_raw():
                received += len(chunk)
    assert received < BIG


def test_a_corrupt_chunk_of_a_big_file_never_arrives_whole_format2(damaged2):
    """Format 2: the 9 MiB blob is chunked (no blob is stored under its own digest); a byte
    flipped near the end of its last chunk ends the response short of its Content-Length."""
    client, refs, root = damaged2
    assert not blob_file(root, refs.big.digest).exists()
    chunk = last_chunk_file(root, refs.big.digest)
    corrupt(chunk, chunk.stat().st_size - 100)
    received = 0
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("GET", f"/v/big/blob/file/{refs.big.version}/raw") as r:
            assert int(r.headers["content-length"]) == BIG
            for chunk_bytes in r.iter_raw():
                received += len(chunk_bytes)
    assert received < BIG


def test_a_missing_blob_is_an_error_page(damaged):
    client, refs, root = damaged
    path = blob_file(root, refs.chart.digest)
    os.chmod(path.parent, stat.S_IRWXU)
    path.unlink()
    r = client.get(f"/v/reports/daily/chart/{refs.chart.version}/raw")
    assert r.status_code == 500 and "Missing blob" in r.text


# -- the backend is the truth -------------------------------------------------------------


def test_new_versions_from_another_machine_show_up(tmp_path):
    """Another machine (its own index) saves into the same backend: the page shows it."""
    root = tmp_path / "store"
    cas.open_store(root).save(b"one", "team/shared/model").store.close()
    with ui_server(root, tmp=tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert 'data-version="2"' not in client.get("/a/team/shared/model").text
        assert "No artifact matches" in client.get("/?q=new-thing").text
        other = cas.open_store(root, index=str(tmp_path / "other-machine.sqlite"))
        other.save(b"two", "team/shared/model", aliases=["production"])
        other.save(b"x", "team/shared/new-thing")
        other.close()
        html = client.get("/a/team/shared/model").text
        assert 'data-version="2"' in html and '<span class="alias">production</span>' in html
        assert 'data-name="team/shared/new-thing"' in client.get("/").text
        assert 'data-name="team/shared/new-thing"' in client.get("/?q=new-thing").text  # search sees it too
        assert client.get("/v/team/shared/model/2/raw").content == b"two"


# -- the command ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["cas --store X ui", "cas ui --store X"])
def test_cas_ui_on_a_missing_store_is_one_line(tmp_path, where):
    missing = str(tmp_path / "none")
    args = ["--store", missing, "ui"] if where.startswith("cas --store") else ["ui", "--store", missing]
    r = subprocess.run([sys.executable, "-m", "cas.cli", *args, "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "cas: error:" in r.stderr and missing in r.stderr
    assert not (tmp_path / "none").exists()  # read-only: nothing was created


def _blocking(modules: set[str]) -> str:
    """Python source that makes importing ``modules`` fail, as if not installed."""
    return (
        "import importlib.abc, sys\n"
        "class _Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name.split('.')[0] in {sorted(modules)!r}:\n"
        "            raise ImportError('blocked for this test: ' + name)\n"
        "sys.meta_path.insert(0, _Block())\n"
    )


def test_without_the_ui_extra_cas_ui_says_what_to_install(tmp_path):
    root = tmp_path / "store"
    cas.open_store(root).close()
    code = _blocking({"starlette", "uvicorn", "jinja2"}) + "from cas.cli import main; main()"
    r = subprocess.run(
        [sys.executable, "-c", code, "--store", str(root), "ui", "--port", "0"], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1 and r.stderr.count("\n") == 1
    assert "pip install 'cas-store[ui]'" in r.stderr


def test_without_the_dataframe_extra_parquet_is_not_previewed(tmp_path):
    import pandas as pd

    root = tmp_path / "store"
    with cas.open_store(root) as store:
        v = store.save(pd.DataFrame({"a": [1, 2]}), "p/s/frame")
    code = _blocking({"pyarrow", "pandas", "numpy"}) + "from cas.cli import main; main()"
    stderr = tmp_path / "err.txt"
    with open(stderr, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "--store", str(root), "ui", "--port", "0"],
            stdout=subprocess.PIPE, stderr=err, text=True,
        )
    try:
        url = re.search(r"http://\S+/", first_line(proc)).group(0)
        page = httpx.get(f"{url}v/p/s/frame/{v.version}", timeout=30)
        assert page.status_code == 200 and "pip install &#39;cas-store[dataframe]&#39;" in page.text
        assert httpx.get(f"{url}v/p/s/frame/{v.version}/raw", timeout=30).content.startswith(b"PAR1")
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stdout.close()


def test_binding_beyond_loopback_needs_a_flag(tmp_path):
    root = tmp_path / "store"
    cas.open_store(root).close()
    r = subprocess.run(
        [sys.executable, "-m", "cas.cli", "--store", str(root), "ui", "--host", "0.0.0.0", "--port", "0"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 1 and "--allow-remote" in r.stderr and r.stderr.count("\n") == 1
    stderr = tmp_path / "err.txt"
    proc = start_command(root, "--host", "0.0.0.0", "--port", "0", "--allow-remote", stderr=stderr)
    try:
        line = first_line(proc)
        port = int(re.search(r":(\d+)/", line).group(1))
        assert "WARNING" in stderr.read_text() and "no authentication" in stderr.read_text()
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stdout.close()


def test_port_zero_prints_the_url_and_loopback_is_the_default(tmp_path):
    root = tmp_path / "store"
    cas.open_store(root).close()
    with ui_server(root, tmp=tmp_path) as server:
        assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0/")
        assert httpx.get(server.url, timeout=30).status_code == 200


def test_ctrl_c_stops_it_cleanly(tmp_path):
    root = tmp_path / "store"
    cas.open_store(root).close()
    stderr = tmp_path / "err.txt"
    proc = start_command(root, "--port", "0", stderr=stderr)
    try:
        url = re.search(r"http://\S+/", first_line(proc)).group(0)
        assert httpx.get(url, timeout=30).status_code == 200  # up and serving, as when a person presses Ctrl-C
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "cas ui: stopped" in out
    assert stderr.read_text() == ""


def test_open_starts_a_browser_on_the_url(tmp_path):
    """``--open`` hands the URL to the user's browser (here: $BROWSER, a script that records it)."""
    root = tmp_path / "store"
    cas.open_store(root).close()
    opened = tmp_path / "opened.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    script.chmod(0o755)
    with ui_server(root, "--open", tmp=tmp_path, env={"BROWSER": f"{script} %s"}) as server:
        for _ in range(100):
            if opened.exists() and opened.read_text().strip():
                break
            time.sleep(0.1)
        assert opened.read_text().strip() == server.url


def test_cas_ui_is_documented_with_screenshots():
    doc = Path(__file__).resolve().parent.parent / "docs" / "ui.md"
    text = doc.read_text()
    images = re.findall(r"!\[[^\]]*\]\((img/[^)]+\.png)\)", text)
    assert len(images) >= 7
    for img in images:
        png = doc.parent / img
        assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size < 200_000, img


# -- a big store ------------------------------------------------------------------------------


def _bench_ui():
    """benchmarks/bench_ui.py builds the store it measures: the test renders the same one."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_ui.py"
    spec = importlib.util.spec_from_file_location("bench_ui", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_store_of_10000_versions_and_a_100_step_chain_renders(tmp_path):
    bench = _bench_ui()
    # tmpfs when there is one: the build pays an fsync per ref on disk
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tmp_path
    work = Path(tempfile.mkdtemp(prefix="cas-ui-big-", dir=base))
    try:
        with cas.open_store(work / "store") as store:
            refs = bench.build(store, 10_000, 100, work)
            assert store.stats().versions == 10_000
        with ui_server(work / "store", tmp=tmp_path) as server, httpx.Client(base_url=server.url, timeout=60) as client:
            for label, path in bench.pages(refs, 100).items():
                r = client.get(path)
                assert r.status_code == 200, (label, r.status_code, r.text[:500])
                assert "</html>" in r.text, label
            up = client.get(bench.pages(refs, 100)["lineage up, all 100 steps"]).text
            assert len(re.findall(r'<g class="node step ', up)) == 101
            assert len(re.findall(r'<g class="node version', up)) == 201
            assert f'data-id="{refs["first"]}"' in up
            front = client.get("/").text
            assert "page 1 of" in front and len(re.findall(r'<tr class="artifact"', front)) == 100
            assert server.errors() == ""
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak RSS from /proc")
def test_big_content_never_sits_whole_in_the_server_memory(tmp_path):
    size = 64 << 20
    root = tmp_path / "store"
    with cas.open_store(root) as store:
        block = os.urandom(1 << 20)
        big = store.save(block * (size >> 20), "big/blob/random")
        store.save(b"small", "big/blob/small")
    with ui_server(root, tmp=tmp_path) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        client.get("/v/big/blob/small/1")  # imports, templates: the baseline
        client.get("/v/big/blob/small/1/raw")
        before = _peak_rss(server.proc.pid)
        got = 0
        with client.stream("GET", f"/v/big/blob/random/{big.version}/raw") as r:
            for chunk in r.iter_raw():
                got += len(chunk)
        assert got == size
        assert client.get(f"/v/big/blob/random/{big.version}").status_code == 200  # its preview reads it all too
        grown = _peak_rss(server.proc.pid) - before
    assert grown < 24 << 20, f"the server's peak RSS grew by {grown >> 20} MiB serving a {size >> 20} MiB blob"

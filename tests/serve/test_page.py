"""The service's page for people (``GET /``) in a real browser: Debian's chromium driven by
playwright against the real server (uvicorn) on small Amazon Beauty runs. The rendered lists must
be the ones ``POST /recommend`` returns."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server(beauty_pipeline_runs, tmp_path_factory):
    """The base URL of the real service (uvicorn in a thread on a free port)."""
    import uvicorn

    from seqrec.serve.app import create_app
    from seqrec.serve.config import PipelineConfig, PipelineSection, VariantConfig

    ret, din = beauty_pipeline_runs
    cfg = PipelineConfig(pipeline=PipelineSection(name="beauty-page", state_dir=str(tmp_path_factory.mktemp("state"))),
                         variants=(VariantConfig(retriever=str(ret), ranker=str(din), candidates=300),))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    srv = uvicorn.Server(uvicorn.Config(create_app(cfg), log_level="warning", access_log=False))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} not found: the page test needs Debian's chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _rows(page) -> list[str]:
    return page.eval_on_selector_all("#results tbody tr[data-item-id]", "rs => rs.map(r => r.dataset.itemId)")


def _wait_done(page, n: int) -> None:
    page.wait_for_function(f"document.body.dataset.done === '{n}'", timeout=30_000)


def test_page_renders_what_recommend_returns(server, browser, tmp_path):
    popular = [i["id"] for i in httpx.get(f"{server}/items", params={"limit": 5}).json()["items"]]
    assert len(popular) == 5
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.wait_for_function("document.querySelector('#version').textContent.includes('beauty-page')")

    # the first item through the search box: type its id, click its suggestion
    search = page.locator("#item-search")
    search.click()
    search.fill(popular[0])
    page.wait_for_function("q => [...document.querySelectorAll('#suggestions li')].map(li => li.dataset.itemId)"
                           ".every(id => id.startsWith(q)) && document.querySelector('#suggestions li')", arg=popular[0])
    page.locator(f"#suggestions li[data-item-id='{popular[0]}']").click()
    # two more (and an unknown id) typed and entered
    for item in (popular[2], popular[4], "no-such-item"):
        search.fill(item)
        search.press("Enter")
    history = [popular[0], popular[2], popular[4], "no-such-item"]
    chips = page.eval_on_selector_all("#history .chip[data-item-id]", "cs => cs.map(c => c.dataset.itemId)")
    assert chips == history
    page.fill("#k", "10")
    page.click("#recommend-history")
    _wait_done(page, 1)

    want = httpx.post(f"{server}/recommend", json={"history": history, "k": 10, "exclude_seen": True,
                                                  "explain": True}).json()
    ids = [i["id"] for i in want["items"]]
    assert len(ids) == 10 and _rows(page) == ids
    assert page.locator("#error").inner_text() == ""
    top = want["items"][0]
    att = page.eval_on_selector_all("#results tbody tr:first-child td.attention [data-att-id]",
                                    "as => as.map(a => a.dataset.attId)")
    assert att and att == [a["id"] for a in top["attention"]] and set(att) <= set(history)
    assert page.locator("#results tbody tr:first-child td.attention .bar").count() == len(att)
    cands = page.eval_on_selector_all("#candidates tbody tr[data-item-id]", "rs => rs.map(r => r.dataset.itemId)")
    assert cands == [c["id"] for c in want["candidates"]] and len(cands) == 100
    assert "no-such-item" in page.locator("#notes").inner_text()
    assert want["model_versions"]["ranker"] in page.locator("#versions").inner_text()
    assert "rank" in page.locator("#timings").inner_text()
    page.screenshot(path=str(tmp_path / "serve_page.png"), full_page=True)
    if os.environ.get("SEQREC_SCREENSHOT"):  # e.g. benchmarks/results/serve_page.png, the README's picture
        shutil.copyfile(tmp_path / "serve_page.png", os.environ["SEQREC_SCREENSHOT"])

    # a chip removed is left out of the next request; a user id renders its own list
    page.click("#history .chip[data-item-id='no-such-item'] button")
    assert page.locator("#history .chip").count() == 3
    page.fill("#user-id", "1")
    page.click("#recommend-user")
    _wait_done(page, 2)
    want = httpx.post(f"{server}/recommend", json={"user_id": "1", "k": 10, "explain": True}).json()
    assert _rows(page) == [i["id"] for i in want["items"]] and len(want["items"]) == 10
    assert page.locator("#results tbody tr:first-child td.attention [data-att-id]").count() >= 1

    # a 4xx shows the service's error text
    page.fill("#k", "0")
    page.click("#recommend-user")
    _wait_done(page, 3)
    assert "k: must be >= 1" in page.locator("#error").inner_text()
    assert not errors, errors
    page.close()

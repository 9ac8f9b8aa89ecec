"""The dashboard in a real browser: Playwright drives Debian's headless Chromium against a real server process.

One server for the module. The first test runs a small job end to end from the page; the others reuse
its result, so that the whole module stays near two minutes on a 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import requests

from tests.servers import ROOT, free_port, start_app, stop, wait_for

CHROMIUM = os.environ.get("KD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Small enough for a 2-core CPU: about a minute, most of it measuring latency.
TINY = {"epochs": "1", "kd_epochs": "1", "finetune_epochs": "1", "pruning_steps": "1", "max_samples": "240"}
JOB_TIMEOUT_S = 420

pytestmark = pytest.mark.browser  # every test here drives Chromium: none belongs in the fast tier


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.skip(f"playwright is not installed ({exc}); scripts/test.sh installs it")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}; scripts/test.sh installs Debian's chromium")
    with sync_playwright() as pw:
        try:
            chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as exc:  # the one reason to skip: this machine cannot start the browser
            pytest.skip(f"Chromium at {CHROMIUM} could not be launched: {exc}")
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real backend process on a free port with its own data directory; yields its base URL."""
    data = tmp_path_factory.mktemp("dashboard_server")
    proc, url = start_app(data / "data", data / "server.log")
    try:
        wait_for(f"{url}/test", proc)
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def static_server(tmp_path_factory):
    """backend/static/ served by a plain http.server on another port: another origin (dashboard/ and vendor/)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(ROOT / "backend" / "static"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/dashboard/index.html", proc, timeout=30)
        yield url
    finally:
        stop(proc)


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser, ignore: tuple[str, ...] = ()):
        self.context = browser.new_context(viewport={"width": 1366, "height": 860}, accept_downloads=True)
        self.page = self.context.new_page()
        self.page.set_default_timeout(30_000)
        self.errors: list[str] = []
        self.ignore = ignore
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg) -> None:
        if msg.type == "error":
            where = (msg.location or {}).get("url", "")
            text = f"console: {msg.text} ({where})"
            if not any(part in text for part in self.ignore):
                self.errors.append(text)

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_selector("body[data-ready=true]")
        assert self.page.locator("#model option[value=resnet18]").count() == 1, "models were not loaded"
        assert self.page.locator("#model option[value=bert]").count() == 1, "every registered model is offered"

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def make_page(browser):
    pages: list[Page] = []

    def make(**kw) -> Page:
        pages.append(Page(browser, **kw))
        return pages[-1]

    yield make
    for p in pages:
        p.close()


def _wait_js(page, expression: str, timeout: float = 30_000) -> None:
    """Until a JavaScript expression is true. page.wait_for_function would eval() it in the page, which the
    dashboard's Content-Security-Policy (script-src 'self', no 'unsafe-eval') rightly refuses."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"{expression} still false after {timeout / 1000:.0f} s"
        page.wait_for_timeout(200)


def _fill_tiny_job(page) -> None:
    page.select_option("#model", "resnet18")
    page.select_option("#dataset", "digits")
    page.fill("#temperature", "4")
    page.fill("#alpha", "0.6")
    page.fill("#sparsity", "0.4")
    page.click("#advanced summary")
    for name, value in TINY.items():
        page.fill(f"#{name}", value)
    page.select_option("#pretrained", "false")


def _watch_progress(page, until: str, timeout_s: float) -> tuple[list[float], list[str]]:
    """Progress-bar values and phase texts seen while waiting for `until` (a selector) to appear."""
    values: list[float] = []
    phases: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = float(page.get_attribute("#progress", "value") or 0)
        phase = page.text_content("#phase") or ""
        if not values or values[-1] != value:
            values.append(value)
        if not phases or phases[-1] != phase:
            phases.append(phase)
        if page.locator(until).count():
            return values, phases
        assert page.locator("#job-state[data-state=failed]").count() == 0, page.text_content("#message-text")
        page.wait_for_timeout(250)
    raise AssertionError(f"{until} did not appear within {timeout_s} s; phases seen: {phases}")


def _check_download(page, tmp_path: Path) -> None:
    with page.expect_download() as info:
        page.click("#download")
    target = tmp_path / (info.value.suggested_filename or "bundle.zip")
    info.value.save_as(target)
    assert target.suffix == ".zip"
    with zipfile.ZipFile(target) as bundle:
        names = bundle.namelist()
        assert any(Path(n).name == "report.json" for n in names), names


# "97.4% [95.1, 98.6]": a figure with its 95% interval.
WITH_INTERVAL = re.compile(r"\d+\.\d% \[\d+\.\d, \d+\.\d\]")


def _check_form_groups(page, concepts) -> None:
    """The option fieldsets follow concepts.option_groups: the open groups in the form, the others in the
    "Advanced options" fold, each titled as the server says."""
    groups = concepts["option_groups"]
    shown = page.eval_on_selector_all("#job-options fieldset", "els => els.map((e) => e.dataset.group)")
    folded = page.eval_on_selector_all("#advanced-options fieldset", "els => els.map((e) => e.dataset.group)")
    assert shown and folded
    assert all(groups[g]["open"] for g in shown) and not any(groups[g]["open"] for g in folded), (shown, folded)
    for group in shown + folded:
        assert page.text_content(f"#options-{group} legend") == groups[group]["title"]
    assert page.locator("#advanced-options #epochs").count() == 1  # a folded group's field, inside the fold


def _check_intervals(page) -> None:
    """Effectiveness with 95% intervals and error bars, the paired differences marked within or beyond noise."""
    accuracy = page.locator("#group-effectiveness tr[data-metric='effectiveness.accuracy'] td")
    for cell in (1, 2):  # teacher, student
        assert WITH_INTERVAL.search(accuracy.nth(cell).text_content()), accuracy.nth(cell).text_content()
    difference = accuracy.nth(3)
    assert "pts [" in difference.text_content() and "p = " in difference.text_content()
    assert difference.locator(".noise").text_content() in ("within noise", "beyond noise")
    assert page.locator("#group-effectiveness .whisker").count() >= 2  # error bars on the bars
    assert page.locator("#group-effectiveness tr[data-metric$='_ci_low']").count() == 0  # folded into brackets
    assert page.locator("#headline .noise").count() == 1
    marked = page.locator("#stages-table tbody tr .noise")
    assert marked.count() >= 2, page.text_content("#stages-table")  # each stage against the one before
    _wait_js(page, "document.querySelector('#plot-image').dataset.loaded === 'true'")


def _check_results(page) -> None:
    results = page.locator("#results")
    assert results.is_visible()
    for group in ("effectiveness", "efficiency", "compression", "complexity"):
        rows = page.locator(f"#group-{group} table tbody tr")
        assert rows.count() > 0, f"no {group} rows"
        assert page.locator(f"#group-{group} .bar.student").count() > 0, f"no {group} chart"
    assert "accuracy" in page.text_content("#group-effectiveness table")
    assert page.locator("#sparsity-chart svg polyline").count() == 1
    assert page.locator("#sparsity-chart svg circle").count() >= 2  # before pruning, then each step
    assert page.locator("#layer-chart .row").count() > 5
    assert page.locator("#history-chart svg polyline").count() >= 2
    assert page.locator("#headline .card").count() >= 4
    assert "teacher" in page.text_content("#summary")
    _check_intervals(page)
    _check_inference_memory(page)


# "565.9 MB": a figure in decimal megabytes, as fmtUnit writes it.
IN_MB = re.compile(r"^[\d,]+(\.\d{1,2})? MB$")


def _check_inference_memory(page) -> None:
    """efficiency_improvements.inference_memory: runtime x model rows, peak RSS and increase for batches 1 and 32."""
    assert page.get_attribute("#group-inference-memory", "data-measured") == "true"
    rows = page.locator("#inference-memory-table tbody tr")
    pairs = rows.evaluate_all("els => els.map((e) => [e.dataset.runtime, e.dataset.model])")
    assert pairs == [[r, m] for r in ("pytorch", "onnxruntime") for m in ("teacher", "student")], pairs
    heads = page.locator("#inference-memory-table thead").text_content()
    for word in ("Batch 1", "Batch 32", "peak RSS", "increase"):
        assert word in heads, heads
    for row in rows.all():
        cells = row.locator("td").all_text_contents()
        assert len(cells) == 6 and all(IN_MB.match(c) for c in cells[2:]), cells
    assert "peak rss increase" not in page.text_content("#results").lower()  # the old figure is gone


@pytest.mark.slow
def test_a_small_job_runs_from_the_page_with_live_progress(server, make_page, tmp_path):
    client = ROOT / "backend" / "static" / "vendor" / "socket.io" / "socket.io.min.js"
    if not client.is_file():
        pytest.fail("the Socket.IO client is not installed: run `npm ci` in the repository root (scripts/test.sh does)")
    p = make_page()
    page = p.page
    p.open(server)
    page.wait_for_selector("#live-status[data-mode=socket]")
    concepts = requests.get(f"{server}/models", timeout=30).json()["concepts"]
    _check_form_groups(page, concepts)
    _fill_tiny_job(page)
    page.select_option("#controls", ["ce_only"])  # one control arm, chosen in its multiple select
    started = time.monotonic()
    page.click("#start")
    page.wait_for_selector("#job-state[data-state=queued], #job-state[data-state=running]")
    job_id = page.text_content("#job-id")
    assert job_id.startswith("job_")
    assert page.is_enabled("#cancel")

    values, phases = _watch_progress(page, "#results:not([hidden])", JOB_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert len({v for v in values if 0 < v < 100}) >= 2, f"the progress bar did not move: {values}"
    assert len(set(phases)) >= 3, f"the phase text did not change: {phases}"
    assert int(page.get_attribute("#job-panel", "data-live-events") or 0) >= 3  # updates came over Socket.IO
    assert page.locator("#loss-chart svg polyline").count() >= 1  # the live loss chart was drawn
    assert page.get_attribute("#job-state", "data-state") == "succeeded"
    assert page.get_attribute("#results", "data-job-id") == job_id
    assert not page.is_enabled("#cancel")
    _check_results(page)

    config = requests.get(f"{server}/jobs/{job_id}", timeout=10).json()["config"]
    assert (config["temperature"], config["alpha"], config["sparsity"]) == (4.0, 0.6, 0.4)
    assert config["epochs"] == 1 and config["max_samples"] == 240 and config["pretrained"] == "false"
    assert config["controls"] == ["ce_only"]

    report = requests.get(f"{server}/evaluate", params={"job_id": job_id}, timeout=30).json()
    within = report["teacher_vs_student_comparison"]["effectiveness"]["accuracy"]["difference"]["within_noise"]
    marking = "#group-effectiveness tr[data-metric='effectiveness.accuracy'] .noise"
    assert page.text_content(marking) == ("within noise" if within else "beyond noise")
    _check_controls(page, report)
    memory = report["efficiency_improvements"]["inference_memory"]
    assert memory, report["efficiency_improvements"].get("inference_memory_reason")
    student = page.locator("#inference-memory-table tr[data-runtime=pytorch][data-model=student] td")
    expected = f"{memory['pytorch']['student']['batch_32']['peak_rss_mb']:,.2f}".rstrip("0").rstrip(".")
    assert student.nth(4).text_content() == f"{expected} MB"  # batch 32, peak RSS
    assert page.eval_on_selector_all("#plot-kind option", "els => els.map((e) => e.value)") == concepts["plot_kinds"]

    _check_download(page, tmp_path)
    page.wait_for_selector(f"#jobs tr[data-job-id='{job_id}'][data-state=succeeded]")
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    print(f"job {job_id} took {elapsed:.0f} s in the page; screenshot {tmp_path / 'dashboard.png'}")
    assert p.errors == []


def _check_controls(page, report) -> None:
    """The control arms panel of a job run with controls ["ce_only"]: teacher, student and the arm with their
    intervals, distillation's gain over ce_only marked, the gain over scratch explained (no scratch arm), the plot."""
    controls = report["knowledge_distillation_analysis"]["controls"]
    assert page.get_attribute("#controls-panel", "data-controls") == "present"
    arms = page.eval_on_selector_all("#controls-table tbody tr", "els => els.map((e) => e.dataset.arm)")
    assert arms == ["teacher", "student", "ce_only"], arms
    for cell in page.locator("#controls-table tr[data-arm=ce_only] td").all()[1:3]:  # accuracy, macro-F1
        assert WITH_INTERVAL.search(cell.text_content()), cell.text_content()
    gain = page.locator("#kd-gain")
    assert "pts [" in gain.text_content() and "p = " in gain.text_content(), gain.text_content()
    within = controls["kd_gain_points"]["within_noise"]
    assert gain.locator(".noise").text_content() == ("within noise" if within else "beyond noise")
    assert controls["init_gain_points_reason"] in page.text_content("#init-gain")
    _wait_js(page, "document.querySelector('#controls-plot').dataset.loaded === 'true'")


@pytest.fixture(scope="module")
def succeeded_job(server):
    """A succeeded job on the module's server: the first test's, or a tiny one run over REST when alone."""
    jobs = requests.get(f"{server}/jobs", params={"state": "succeeded"}, timeout=10).json()["jobs"]
    if jobs:
        return jobs[0]["id"]
    body = {"model_name": "resnet18", "pretrained": False, **{k: int(v) for k, v in TINY.items()}}
    job_id = requests.post(f"{server}/train", json=body, timeout=30).json()["job_id"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        state = requests.get(f"{server}/jobs/{job_id}", timeout=10).json()["state"]
        if state in ("succeeded", "failed", "cancelled"):
            assert state == "succeeded"
            return job_id
        time.sleep(1)
    raise AssertionError("the tiny job did not finish")


def _start_and_cancel(page, *, live: bool) -> str:
    """Start a tiny job, see its progress move (live events, or polls when not live), cancel it; the job's id."""
    _fill_tiny_job(page)
    page.fill("#epochs", "30")  # long enough to be still running when cancelled
    page.click("#start")
    page.wait_for_selector("#job-state[data-state=running]", timeout=60_000)
    if live:
        _wait_js(page, "Number(document.querySelector('#job-panel').dataset.liveEvents || 0) >= 2", timeout=60_000)
    else:
        _wait_js(page, "Number(document.querySelector('#progress').value) > 0", timeout=60_000)
        page.evaluate("window.firstProgress = document.querySelector('#progress').value")
        _wait_js(page, "document.querySelector('#progress').value !== window.firstProgress", timeout=60_000)
    job_id = page.text_content("#job-id")
    page.click("#cancel")
    page.wait_for_selector("#job-state[data-state=cancelled]", timeout=60_000)
    assert "cancelled" in page.text_content("#message-text")
    page.wait_for_selector(f"#jobs tr[data-job-id='{job_id}'][data-state=cancelled]")
    return job_id


def test_the_page_works_from_another_origin(server, static_server, succeeded_job, make_page, tmp_path):
    p = make_page()
    page = p.page
    p.open(f"{static_server}/dashboard/index.html?api={server}")
    assert page.input_value("#backend-url") == server
    page.wait_for_selector("#live-status[data-mode=socket]")  # Socket.IO across origins
    page.wait_for_selector(f"#jobs tr[data-job-id='{succeeded_job}']")

    _start_and_cancel(page, live=True)

    page.click(f"#jobs tr[data-job-id='{succeeded_job}'] button")
    page.wait_for_selector(f"#results[data-job-id='{succeeded_job}']:not([hidden])")
    _check_results(page)
    _check_download(page, tmp_path)
    page.screenshot(path=str(tmp_path / "cross_origin.png"), full_page=True)
    assert p.errors == []


def test_without_the_socketio_client_the_page_says_so_and_polls(server, succeeded_job, make_page):
    p = make_page(ignore=("socket.io.min.js",))  # the one failed request this test causes on purpose
    page = p.page
    page.route("**/socket.io.min.js", lambda route: route.fulfill(status=404, body="not installed"))
    p.open(f"{server}/")
    page.wait_for_selector("#live-status[data-mode=polling]")
    notice = page.locator("#live-notice")
    assert notice.is_visible() and "npm ci" in notice.text_content()

    _start_and_cancel(page, live=False)  # the progress it saw move came from polling GET /jobs/<id>
    assert page.get_attribute("#job-panel", "data-live-events") == "0"

    page.click(f"#jobs tr[data-job-id='{succeeded_job}'] button")
    page.wait_for_selector(f"#results[data-job-id='{succeeded_job}']:not([hidden])")
    _check_results(page)
    assert p.errors == []


def test_a_job_without_control_arms_or_inference_memory_says_why(server, succeeded_job, make_page):
    """controls null: the panel is one line with controls_reason, no table and no plot; inference_memory null:
    one line with inference_memory_reason. The module's job is shown through a copy of its report with both
    removed, as a job without them reports them."""
    report = requests.get(f"{server}/evaluate", params={"job_id": succeeded_job}, timeout=30).json()
    kd = report["knowledge_distillation_analysis"]
    kd["controls"], kd["controls_reason"] = None, "no control arms were asked for (a test's words)"
    efficiency = report["efficiency_improvements"]
    efficiency["inference_memory"], efficiency["inference_memory_reason"] = None, "the probe could not fork (a test)"
    p = make_page()
    page = p.page
    page.route(
        "**/evaluate?job_id=*", lambda route: route.fulfill(content_type="application/json", body=json.dumps(report))
    )
    p.open(f"{server}/?job={succeeded_job}")
    page.wait_for_selector(f"#results[data-job-id='{succeeded_job}']:not([hidden])")
    assert page.get_attribute("#controls-panel", "data-controls") == "absent"
    assert page.text_content("#controls-panel") == "Control arms: no control arms were asked for (a test's words)"
    assert page.locator("#controls-table, #controls-plot, #kd-gain").count() == 0
    assert page.get_attribute("#group-inference-memory", "data-measured") == "false"
    assert page.text_content("#inference-memory-reason") == "Not measured: the probe could not fork (a test)."
    assert page.locator("#inference-memory-table").count() == 0
    assert p.errors == []


def test_bad_options_and_refused_uploads_are_explained(server, make_page, tmp_path):
    p = make_page(ignore=("status of 400", "status of 415"))  # the refusals this test asks for
    page = p.page
    p.open(f"{server}/")
    page.select_option("#model", "resnet18")
    page.fill("#alpha", "1.5")
    page.click("#start")
    page.wait_for_selector("#message:not([hidden])")
    assert "alpha must be a number in [0, 1]" in page.text_content("#message-text")
    assert page.get_attribute("#alpha", "aria-invalid") == "true"

    bad = tmp_path / "notes.txt"
    bad.write_text("not a dataset")
    page.set_input_files("#dataset-file", str(bad))
    _wait_js(page, "document.querySelector('#message-text').textContent.includes('upload of notes.txt')")

    good = tmp_path / "reviews.csv"
    good.write_text("text,label\n" + "".join(f"good film {i},pos\nbad film {i},neg\n" for i in range(20)))
    page.select_option("#model", "distilbert")
    page.set_input_files("#dataset-file", str(good))
    _wait_js(page, "document.querySelector('#dataset').selectedOptions[0].text.includes('reviews.csv')")
    assert page.input_value("#dataset").startswith("upl_")
    assert p.errors == []


def test_a_foreign_api_parameter_is_ignored(server, make_page):
    """/?api=https://evil.example: no script from and no request to another origin; the page says so."""
    p = make_page()
    seen: list[str] = []
    p.page.on("request", lambda req: seen.append(req.url))
    p.page.route("https://evil.example/**", lambda route: route.abort())
    p.open(f"{server}/?api=https://evil.example")
    p.page.wait_for_timeout(1500)  # the Socket.IO client and the first polls have gone out
    assert seen and not [u for u in seen if not u.startswith(server)], seen
    scripts = p.page.eval_on_selector_all("script[src]", "els => els.map((e) => e.src)")
    assert scripts and all(s.startswith(server) for s in scripts), scripts
    assert "was ignored" in (p.page.text_content("#message-text") or "")
    assert p.page.input_value("#backend-url") == server
    assert p.errors == []  # nothing the Content-Security-Policy had to block


def test_the_page_asks_once_for_the_token(browser, tmp_path):
    """A server with a token: the page asks for it once, keeps it for the tab, and goes live with it."""
    client = ROOT / "backend" / "static" / "vendor" / "socket.io" / "socket.io.min.js"
    if not client.is_file():
        pytest.skip("the Socket.IO client is not installed (npm ci)")
    token = "browser-token"
    proc, url = start_app(tmp_path / "d", tmp_path / "server.log", "--api-token", token)
    p = Page(browser, ignore=("status of 401",))  # the refusals before the token is given
    try:
        wait_for(f"{url}/", proc)  # the page shell needs no token
        asked: list[str] = []

        def answer(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept(token)

        p.page.on("dialog", answer)
        p.open(f"{url}/")
        p.page.wait_for_selector("#live-status[data-mode=socket]")
        assert len(asked) == 1 and "token" in asked[0]
        assert p.page.evaluate("sessionStorage.getItem('kd-api-token')") == token
        p.page.reload()
        p.page.wait_for_selector("body[data-ready=true]")
        p.page.wait_for_selector("#live-status[data-mode=socket]")
        assert len(asked) == 1  # kept for the tab: not asked again
        assert p.errors == []
    finally:
        p.close()
        stop(proc)


def test_an_option_declared_on_the_server_reaches_the_form(browser, tmp_path):
    """tests/throwaway_server.py declares throwaway_knob (a number in [0, 0.5], default 0.25, group training) and
    nothing else changes: the form shows it with that range, default, label and help, refuses a value out of
    range before any request, and sends one in range in a body the server's JobConfig accepts. No job runs: the
    test answers POST /train itself."""
    from backend.jobconfig import JobConfig, register_option
    from tests.throwaway_server import THROWAWAY

    proc, url = start_app(tmp_path / "d", tmp_path / "server.log", program="tests/throwaway_server.py")
    p = Page(browser, ignore=("status of 503",))  # the test's own answer to POST /train
    sent: list[dict] = []

    def answer_train(route) -> None:
        sent.append(route.request.post_data_json)
        error = {"error": {"code": "test", "message": "answered by the test"}}
        route.fulfill(status=503, content_type="application/json", body=json.dumps(error))

    try:
        wait_for(f"{url}/test", proc)
        page = p.page
        page.route("**/train", answer_train)
        p.open(f"{url}/")
        knob = page.locator("input[name=throwaway_knob]")
        assert knob.count() == 1
        assert knob.get_attribute("type") == "number"
        assert (knob.get_attribute("min"), knob.get_attribute("max")) == ("0", "0.5")
        assert knob.get_attribute("placeholder") == "0.25"  # the default, shown greyed; empty: not sent
        assert page.locator("#options-training input[name=throwaway_knob]").count() == 1  # in its group's fieldset
        field = page.locator("[data-option=throwaway_knob]")
        assert field.locator("label").text_content() == "Throwaway knob"
        assert field.locator("label").get_attribute("for") == knob.get_attribute("id")
        help_text = field.locator(".help").text_content()
        assert "a throwaway option" in help_text and "[0, 0.5]" in help_text

        page.click("#advanced summary")
        page.fill("input[name=throwaway_knob]", "0.75")
        page.click("#start")
        page.wait_for_selector("#message:not([hidden])")
        assert "throwaway_knob must be a number in [0, 0.5]" in page.text_content("#message-text")
        assert knob.get_attribute("aria-invalid") == "true"
        assert sent == []  # refused in the page: no request

        page.fill("input[name=throwaway_knob]", "0.4")
        page.click("#start")
        _wait_js(page, "document.querySelector('#message-text').textContent.includes('answered by the test')")
        assert len(sent) == 1 and sent[0]["throwaway_knob"] == 0.4 and sent[0]["model_name"] == "resnet18"
        with register_option(THROWAWAY):
            assert JobConfig.from_dict(sent[0]).throwaway_knob == 0.4  # what the form sends validates
        assert p.errors == []
    finally:
        p.close()
        stop(proc)


def test_the_study_form_is_built_from_the_study_axes(server, make_page):
    """One comma-separated input per grid axis of GET /models (study_axes), checked against the axis's declared
    range in the page, and one for the seeds (the `seed` option's range, at most 5, distinct); the body sent holds
    the grid, the seeds and the options set. POST /studies is answered by the test: no study runs."""
    axes = requests.get(f"{server}/models", timeout=30).json()["study_axes"]
    p = make_page(ignore=("status of 503",))
    page = p.page
    sent: list[dict] = []

    def answer_studies(route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        sent.append(route.request.post_data_json)
        error = {"error": {"code": "test", "message": "answered by the test"}}
        route.fulfill(status=503, content_type="application/json", body=json.dumps(error))

    page.route("**/studies", answer_studies)
    p.open(f"{server}/")
    page.wait_for_selector("#study-grid input[name=sparsity]")
    assert page.eval_on_selector_all("#study-grid input", "els => els.map((e) => e.name)") == axes
    assert page.get_attribute("#study-sparsity", "required") is not None
    assert page.get_attribute("#study-structural_ratio", "required") is not None

    page.fill("#study-sparsity", "0.3, 1")  # sparsity is in [0, 1)
    page.click("#study-start")
    _wait_js(page, "!document.querySelector('#study-message').hidden")
    assert "grid.sparsity must be a number in [0, 1), got 1." in page.text_content("#study-message")
    assert sent == []

    page.fill("#study-sparsity", "0.3, 0.6")
    for seeds, refusal in (
        ("0, 1, 1", "seeds lists a seed twice: 1."),
        ("0 1 2 3 4 5", "seeds must be a list of 1 to 5 seeds, got 6."),
        ("0, -1", "seeds must be an integer in [0, 2147483647], got -1."),
        ("0.5", "seeds must be an integer in [0, 2147483647], got 0.5."),
    ):
        page.fill("#study-seeds", seeds)
        page.click("#study-start")
        _wait_js(page, f"document.querySelector('#study-message').textContent.includes({json.dumps(refusal)})")
        assert page.get_attribute("#study-seeds", "aria-invalid") == "true"
    assert sent == []

    page.fill("#study-seeds", "0, 1")
    page.fill("#study-structural_ratio", "0.5")
    page.fill("#study-kd_loss", "logits, ce")
    page.fill("#study-max-samples", "200")
    page.click("#study-start")
    _wait_js(page, "document.querySelector('#study-message').textContent.includes('answered by the test')")
    assert sent == [
        {
            "model_name": "resnet18",
            "grid": {"sparsity": [0.3, 0.6], "structural_ratio": [0.5], "kd_loss": ["logits", "ce"]},
            "max_samples": 200,
            "seeds": [0, 1],
        }
    ]
    assert page.get_attribute("#study-seeds", "aria-invalid") is None
    from backend.jobs.studies import expand_grid

    assert len(expand_grid(sent[0])[2]) == 8  # what the form sends validates: 2 x 1 x 2 points x 2 seeds
    assert p.errors == []


def _study_row(index, sparsity, ratio, state, n_ok, **figures) -> dict:
    """A grid point of GET /studies/<id> run with seeds [0, 1]: figures as name: (mean, std, [low, high]), or a
    bare mean where only one seed succeeded (no spread, no interval)."""
    row = {
        "index": index,
        "job_id": f"job_s{index}0",
        "job_ids": [f"job_s{index}0", f"job_s{index}1"],
        "seeds": [0, 1],
        "n_seeds": 2,
        "n_succeeded": n_ok,
        "state": state,
        "sparsity": sparsity,
        "structural_ratio": ratio,
    }
    for name, value in figures.items():
        if isinstance(value, tuple):
            row[name], row[f"{name}_std"], row[f"{name}_ci"] = value
        else:
            row[name], row[f"{name}_std"], row[f"{name}_ci"] = value, None, None
    return row


def _study_fixture(study_id: str) -> dict:
    """A finished study of 4 grid points x 2 seeds (8 jobs), shaped as GET /studies/<id> answers: point 1 is on the
    frontier but within the noise of point 2, which it dominates; point 3 is partial (one seed failed)."""
    points = [  # sparsity, ratio, state, seeds succeeded, accuracy, batch-1 latency (ms), dense size (MB)
        (0.3, 0.5, "succeeded", 2, (0.91, 0.0048, [0.867, 0.953]), (10.0, 0.1, [9.0, 11.0]), (2.0, 0.0, [2.0, 2.0])),
        (0.6, 0.5, "succeeded", 2, (0.89, 0.0045, [0.85, 0.93]), (7.0, 0.17, [6.0, 8.5]), (1.5, 0.0, [1.5, 1.5])),
        (0.3, 0.25, "succeeded", 2, (0.88, 0.009, [0.80, 0.96]), (9.0, 0.17, [7.5, 10.5]), (2.5, 0.0, [2.5, 2.5])),
        (0.6, 0.25, "partial", 1, 0.5, 20.0, 3.0),
    ]
    rows = [
        _study_row(i, s, r, state, ok, accuracy=acc, latency_batch_1_ms=lat, model_size_mb=mb)
        for i, (s, r, state, ok, acc, lat, mb) in enumerate(points)
    ]
    flags = [(True, True), (True, False), (False, None), (False, None)]  # (pareto_latency, separable_latency)
    for row, (on, separable) in zip(rows, flags, strict=True):
        row.update(pareto_latency=on, pareto_size=on, separable=separable, separable_latency=separable,
                   separable_size=separable)  # fmt: skip
    rows[3]["error"] = "seed 1: failed (a test's words)"
    return {
        "study_id": study_id,
        "state": "partial",
        "model_name": "resnet18",
        "grid": {"sparsity": [0.3, 0.6], "structural_ratio": [0.5, 0.25]},
        "points_total": 8,
        "points_done": 8,
        "grid_points": 4,
        "seeds": [0, 1],
        "points_succeeded": 7,
        "job_ids": [j for r in rows for j in r["job_ids"]],
        "pareto_note": "pareto_latency: a test's note",
        "rows": rows,
        "runs": [],
    }


def test_a_study_with_seeds_shows_means_intervals_and_noise_marks(server, make_page):
    """A study run with seeds [0, 1]: the page says jobs where it counts jobs and grid points x seeds, each grid
    point's mean with its 95% interval (the standard deviation on hover), seeds succeeded / run, the partial state,
    error bars on the frontier and a frontier point within the noise of one it dominates marked in the table and
    the plot. POST /studies and GET /studies/<id> are answered by the test: no study runs."""
    study_id = "study_withseeds"
    detail = _study_fixture(study_id)
    p = make_page()
    page = p.page

    def answer_post(route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        body = {"study_id": study_id, "job_ids": detail["job_ids"], "points_total": 8, "points_done": 0,
                "state": "queued", "grid": detail["grid"]}  # fmt: skip
        route.fulfill(status=202, content_type="application/json", body=json.dumps(body))

    page.route("**/studies", answer_post)
    page.route(
        f"**/studies/{study_id}", lambda route: route.fulfill(content_type="application/json", body=json.dumps(detail))
    )
    p.open(f"{server}/")
    page.wait_for_selector("#study-seeds")
    page.fill("#study-sparsity", "0.3, 0.6")
    page.fill("#study-structural_ratio", "0.5, 0.25")
    page.fill("#study-seeds", "0, 1")
    page.click("#study-start")
    page.wait_for_selector("#study-table tbody tr[data-point='3']")
    assert f"Study {study_id} queued: 8 jobs (4 grid points × 2 seeds)." == page.text_content("#study-message")
    assert page.text_content("#study-count") == "8 / 8 jobs done (4 grid points × 2 seeds)"
    assert page.text_content("#study-state") == "partial"

    heads = page.locator("#study-table thead th").all_text_contents()
    cell = lambda point, metric: page.locator(f"#study-table tr[data-point='{point}'] td[data-metric={metric}]")  # noqa: E731
    column = lambda point, name: page.locator(f"#study-table tr[data-point='{point}'] td").nth(heads.index(name))  # noqa: E731
    assert cell(0, "accuracy").text_content() == "91.0% [86.7, 95.3]"
    assert cell(0, "accuracy").get_attribute("title").startswith("standard deviation 0.48 pts over 2 seeds")
    assert cell(1, "latency_batch_1_ms").text_content() == "7 [6, 8.5]"
    assert cell(0, "model_size_mb").text_content() == "2"  # alike for every seed: no interval to show
    assert "the same for all 2 seeds" in cell(0, "model_size_mb").get_attribute("title")
    assert cell(3, "accuracy").text_content() == "50.0%"  # one seed succeeded: a mean without an interval
    assert cell(3, "accuracy").get_attribute("title") is None
    assert column(0, "seeds (ok / run)").text_content() == "2 / 2"
    assert column(3, "seeds (ok / run)").text_content() == "1 / 2"
    assert column(3, "state").text_content() == "partial"
    assert "a test's words" in column(3, "state").get_attribute("title")
    assert page.locator("#study-table tr[data-point='3'] .badge[data-state=partial]").count() == 1

    assert page.eval_on_selector_all(
        "#study-table tr[data-within-noise=true]", "els => els.map((e) => e.dataset.point)"
    ) == ["1"]
    assert column(1, "Pareto lat.").text_content() == "yes within noise"
    assert column(0, "Pareto lat.").text_content() == "yes"  # separable: no mark
    assert column(2, "Pareto lat.").text_content() == ""
    assert "Each row is a grid point: the mean over its succeeded seeds" in page.text_content("#study-note")

    chart = page.locator("#study-chart svg")
    assert chart.locator("circle").count() == 4
    assert chart.locator("circle[data-pareto='1']").count() == 2
    marked = chart.locator("circle[data-within-noise='1']")
    assert marked.count() == 1 and marked.get_attribute("data-point") == "1"
    assert marked.get_attribute("fill") == "#fff" and marked.get_attribute("stroke-dasharray")  # hollow, dashed
    assert "within the noise" in marked.locator("title").text_content()
    assert "(within noise)" in chart.text_content()
    bars = chart.locator("g.errorbar")
    assert bars.evaluate_all("els => els.map((e) => e.dataset.point)") == ["0", "1", "2"]  # point 3: no interval
    assert bars.first.locator("line").count() == 6  # accuracy and latency, each a line and two caps
    assert "95% intervals over the seeds" in page.text_content("#study-chart .chart-legend")
    assert p.errors == []

"""GET / and the dashboard's static files, through the Flask test client (the browser tests are in
test_dashboard_browser.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from backend.api import dashboard
from backend.jobconfig import job_options

ROOT = Path(__file__).resolve().parent.parent
PAGE_DIR = dashboard.STATIC_DIR / "dashboard"
# The only option controls index.html writes itself: they depend on the model and the uploads.
PICKERS = {"model_name", "dataset", "teacher_upload_id"}


def test_page_is_served_with_its_base_and_api_address(client):
    res = client.get("/")
    assert res.status_code == 200
    assert res.mimetype == "text/html"
    html = res.get_data(as_text=True)
    assert '<base href="/static/dashboard/">' in html
    assert '<meta name="kd-api" content="/">' in html
    assert '<script type="module" src="dashboard.js"></script>' in html
    assert dashboard.MARKER not in html
    assert res.headers["Cache-Control"] == "no-cache"


def test_page_under_a_prefix_points_at_the_prefixed_api(client):
    html = client.get("/", base_url="http://localhost/kd/").get_data(as_text=True)
    assert '<base href="/kd/static/dashboard/">' in html
    assert '<meta name="kd-api" content="/kd/">' in html


def test_script_and_style_are_served_and_load_nothing_from_elsewhere(client):
    for name, kind in (("dashboard.js", "javascript"), ("dashboard.css", "css")):
        res = client.get(f"/static/dashboard/{name}")
        assert res.status_code == 200 and kind in res.mimetype
        res.close()
    page = (dashboard.STATIC_DIR / "dashboard" / "index.html").read_text(encoding="utf-8")
    script = (dashboard.STATIC_DIR / "dashboard" / "dashboard.js").read_text(encoding="utf-8")
    for text in (page, script):
        assert "cdn" not in text.lower() and "https://" not in text  # works offline: no CDN, no external host


def test_page_says_whether_the_socketio_client_is_installed(client, monkeypatch, tmp_path):
    present = dashboard.SOCKETIO_CLIENT.is_file()
    html = client.get("/").get_data(as_text=True)
    assert f'<meta name="kd-socketio-client" content="{"present" if present else "missing"}">' in html
    monkeypatch.setattr(dashboard, "SOCKETIO_CLIENT", tmp_path / "absent.js")
    html = client.get("/").get_data(as_text=True)
    assert '<meta name="kd-socketio-client" content="missing">' in html
    assert "npm ci" in (dashboard.STATIC_DIR / "dashboard" / "dashboard.js").read_text(encoding="utf-8")


def test_missing_page_is_a_json_error(client, monkeypatch, tmp_path):
    monkeypatch.setattr(dashboard, "PAGE", tmp_path / "gone.html")
    res = client.get("/")
    assert res.status_code == 500
    assert res.get_json()["error"]["code"] == "dashboard_missing"


def test_socketio_client_comes_from_a_pinned_npm_package():
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    version = package["dependencies"]["socket.io-client"]
    assert version[0].isdigit(), "pin an exact version"
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/socket.io-client"]["version"] == version
    assert "socket.io.min.js" in package["scripts"]["postinstall"]
    ignore = (dashboard.STATIC_DIR / "vendor" / ".gitignore").read_text(encoding="utf-8")
    assert "*" in ignore.splitlines()  # installed files are never committed


def _read(name: str) -> str:
    return (PAGE_DIR / name).read_text(encoding="utf-8")


def test_page_writes_no_option_field_by_hand():
    """The form's options come from GET /models (option_schema): no input, range or step is written in the page,
    so none can drift from the declaration (temperature's min 0.1 against an exclusive 0, sparsity's max 0.99)."""
    page = _read("index.html")
    controls = re.findall(r"<(?:input|select|textarea)\b[^>]*>", page)
    assert controls
    for tag in controls:
        assert not re.search(r"\s(min|max|step|minlength|maxlength)=", tag), tag
    names = set(re.findall(r'\sname="([^"]+)"', " ".join(controls)))
    assert names == PICKERS, names
    for option in job_options():
        if option.name not in PICKERS:
            assert f'id="{option.name}"' not in page and f'name="{option.name}"' not in page, option.name
    for name in PICKERS:
        assert f'data-option="{name}"' in page  # placed among the generated fields, in the schema's order


def test_scripts_build_the_form_and_read_the_vocabulary_from_the_server():
    script = _read("dashboard.js")
    for word in ("option_schema", "concepts", "finished_states", "phase_labels", "preset_defaults"):
        assert word in script, word
    assert "const PHASES" not in script and "const FINISHED" not in script  # no copies of the server's words
    assert "NUMBER_FIELDS" not in script  # no list of option names either
    studies = _read("studies.js")
    assert "study_axes" in studies and "option_schema" in studies


def test_scripts_are_modules_that_share_their_helpers():
    """studies.js imports dashboard.js's helpers instead of keeping copies; both load as same-origin modules,
    which the page's Content-Security-Policy (script-src 'self') allows."""
    page, script, studies = _read("index.html"), _read("dashboard.js"), _read("studies.js")
    assert re.findall(r"<script\b[^>]*>", page) == [
        '<script type="module" src="dashboard.js">',
        '<script type="module" src="studies.js">',
    ]
    exported = set(re.findall(r"^export (?:async )?(?:function|const|class|let) ([\w$]+)", script, re.M))
    imported = re.search(r"^import \{([^}]*)\} from '\./dashboard\.js';", studies, re.M | re.S)
    assert imported, "studies.js imports from ./dashboard.js"
    names = {n.strip() for n in imported.group(1).split(",") if n.strip()}
    assert names <= exported, names - exported
    for helper in ("$", "el", "svg", "api", "isNum", "pct", "openWithToken", "socketOptions", "parseValue"):
        assert helper in names, helper
    for definition in (
        r"const \$ =",
        r"function (el|svg|api|resolveApi|apiAllowed|openWithToken)\b",
        r"const isNum\b",
        r"TOKEN_KEY",
        r"LOOPBACK_ORIGIN",
        r"\(function \(\) \{",
    ):
        assert not re.search(definition, studies), definition  # no second copy
    assert not re.search(r"^\(function \(\) \{", script, re.M)  # a module needs no wrapper


def test_other_jobs_events_are_filtered_and_throttled():
    """Listeners receive every job's events: progress is shown for the watched job only, and the list of jobs is
    fetched at most once a second for other jobs' status changes; a study leaves its previous room."""
    script = _read("dashboard.js")
    assert "if (p.job_id !== state.watched) { keepEarly(p); return; }" in script
    assert "const JOBS_REFRESH_MIN_MS = 1000;" in script
    assert "emit('leave', { study_id: state.joined })" in _read("studies.js")


def test_results_show_intervals_paired_differences_and_control_arms():
    """Issue #22: the page reads the report's 95% intervals (ci, *_ci), paired differences (within_noise,
    p_value), each stage's difference from the one before, and the control arms (or why there are none)."""
    script = _read("dashboard.js")
    for word in (
        ".ci",
        "_ci",
        "ci_points",
        "within_noise",
        "p_value",
        "test_difference_from_previous",
        "controls_reason",
        "kd_gain_points",
        "init_gain_points",
        "student_minus_arm",
        "/visualize",
    ):
        assert word in script, word
    assert "within noise" in script and "beyond noise" in script
    page = _read("index.html")
    assert 'id="controls-panel"' in page and 'id="plot-kind"' in page
    assert ".whisker" in _read("dashboard.css")  # error bars over the bars that have an interval


def test_plot_kinds_come_from_the_server():
    """The plot picker lists GET /models concepts.plot_kinds: no array in the script names several plot kinds."""
    from backend.metrics.plots import PLOT_KINDS

    script = _read("dashboard.js")
    assert "plot_kinds" in script
    for literal in re.findall(r"\[[^\[\]]*\]", script):
        named = set(re.findall(r"'([a-z_]+)'", literal)) & set(PLOT_KINDS)
        assert len(named) < 2, literal


def test_results_show_inference_memory_and_no_retired_figures():
    """efficiency_improvements.inference_memory (runtime x model x batch: peak RSS and increase) or its reason;
    the retired comparison figures (peak_rss_increase_mb, parameters_trainable) are read nowhere."""
    script = _read("dashboard.js")
    for word in ("inference_memory", "inference_memory_reason", "peak_rss_mb", "increase_mb", "inference-memory-table"):
        assert word in script, word
    for name in ("index.html", "dashboard.js", "studies.js", "dashboard.css"):
        text = _read(name)
        assert "peak_rss_increase" not in text and "parameters_trainable" not in text, name

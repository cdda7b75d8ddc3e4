"""A real JupyterLab in headless Chromium: run the MoE notebook, then move a widget control.

Starts JupyterLab on localhost with `course lab` (which opens the index notebook), opens notebooks/01_moe_routing.ipynb in Debian's chromium (driven by
Playwright with an explicit executable: browser downloads fail on these machines), runs all cells,
asserts that no cell failed, that the routing widget rendered, and that moving its capacity slider
changes what it shows. Screenshots go to tests/artifacts/. Without chromium the test is skipped, unless
COURSE_REQUIRE_BROWSER=1 (as in CI), where it fails.
"""
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
NOTEBOOK = "01_moe_routing.ipynb"  # `course lab` serves the notebooks folder


def require_browser():
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("playwright (pip install -e '.[dev]')")
    if missing:
        message = "the browser test needs " + " and ".join(missing)
        if os.environ.get("COURSE_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on localhost with throw-away settings; yields (base url, token)."""
    require_browser()
    tmp = tmp_path_factory.mktemp("lab")
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "TRITON_INTERPRET": "1", "JUPYTER_CONFIG_DIR": str(tmp / "config"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp / "rt")}
    command = [sys.executable, "-m", "course.cli", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               "--LabApp.expose_app_in_browser=True"]  # `course lab`, as a learner runs it
    log = open(tmp / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("JupyterLab did not start:\n" + (tmp / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield base, token
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


ERRORS_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  const errors = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (const out of cell.outputs.toJSON())
      if (out.output_type === 'error') errors.push(`cell ${i}: ${out.ename}: ${out.evalue}`);
  }
  return errors;
}"""
UNRUN_JS = """() => {
  const cells = window.jupyterapp.shell.currentWidget.content.model.cells;
  let unrun = 0;
  for (let i = 0; i < cells.length; i++)
    if (cells.get(i).type === 'code' && !cells.get(i).executionCount) unrun++;
  return unrun;
}"""
BARS_JS = """() => {
  const plot = [...document.querySelectorAll('.js-plotly-plot')].pop();
  return plot && plot.data ? JSON.stringify(plot.data.map(t => t.y || null).slice(4)) : null;
}"""


def test_moe_notebook_runs_in_jupyterlab_and_its_widget_responds(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, token = lab
    ARTIFACTS.mkdir(exist_ok=True)
    profile = tmp_path / "chromium-profile"  # a fresh profile each run
    with sync_playwright() as p:
        browser = p.chromium.launch_persistent_context(
            user_data_dir=str(profile), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1500, "height": 1000})
        try:
            page = browser.new_page()
            console = []
            page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            page.goto(f"{base}/lab/tree/00_index.ipynb?token={token}")  # where `course lab` opens
            page.locator("h2", has_text="The map of the course").first.wait_for(timeout=90_000)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            page.get_by_text("| Idle").first.wait_for(timeout=90_000)  # kernel ready: Run All now
            news = page.get_by_role("button", name="No")  # JupyterLab's "get notified?" toast
            if news.count():
                news.first.click()
            page.evaluate("window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
            assert page.evaluate(UNRUN_JS) > 0
            # resolves when the last cell has run
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.wait_for_function(f"({UNRUN_JS})() === 0", timeout=240_000)
            assert page.evaluate(ERRORS_JS) == []

            summary = page.locator(".widget-html", has_text="assignments dropped").first
            summary.scroll_into_view_if_needed()
            plots = page.locator(".js-plotly-plot .main-svg")
            plots.first.wait_for(timeout=30_000)
            assert plots.count() > 0, "the routing widget's plotly figure did not render"
            widget = page.locator(".widget-vbox", has=summary).first
            widget.screenshot(path=str(ARTIFACTS / "routing_widget_before.png"))
            before, bars_before = summary.inner_text(), page.evaluate(BARS_JS)

            slider = page.locator(".widget-slider", has_text="capacity factor").first
            handle = slider.locator(".noUi-handle")
            handle.focus()
            for _ in range(4):
                handle.press("ArrowRight")
            page.wait_for_function(  # four steps of 0.25 take the capacity factor from 1 to 2
                "() => [...document.querySelectorAll('.widget-html')].some("
                "e => e.innerText.includes('capacity 128 per expert'))", timeout=30_000)
            after, bars_after = summary.inner_text(), page.evaluate(BARS_JS)
            widget.screenshot(path=str(ARTIFACTS / "routing_widget_after.png"))
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_moe_routing.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_failure.png"))
            (ARTIFACTS / "console.log").write_text("\n".join(console))
            raise
        finally:
            browser.close()
    assert before != after, "moving the capacity slider did not change the summary"
    assert bars_before != bars_after, "moving the capacity slider did not change the load bars"
    assert "capacity 64 per expert" in before and "capacity 128 per expert" in after

"""End to end: a real JupyterLab in headless Chromium runs the explorer notebook and a slider moves the readout.

What it does:

1. builds a notebook in a temporary folder: notebook 03's source (jupytext) with the parameters set to the
   ``smoke`` profile (a papermill-style injected cell after the ``parameters`` cell), or, while notebook 03 has no explorer yet, a minimal notebook that
   displays :class:`vsmlab.lab.widgets.Explorer`;
2. starts JupyterLab on 127.0.0.1 on a free port, token and password off, root allowed, with its own
   config / data / runtime / settings / workspace folders in the temporary folder (the ipywidgets lab
   extension still comes from this environment's ``share/jupyter``, which stays on Jupyter's data path);
3. opens the notebook in Debian's Chromium through Python playwright (``executable_path``; browsers are
   never downloaded), runs all cells, waits for the explorer, types a new temperature into the slider's
   readout and asserts that the hallucination readout changes; saves screenshots to ``test-artifacts/``;
4. always shuts the server down and kills the processes it started (server and kernels).

One server and one browser serve every test of the module (the ``lab`` fixture); the last test is a
student's Run All on notebook 01 in a project whose ``figures/`` is committed: an exercise check cell must
answer and ``git status -- figures`` must stay clean (the figures go to the git-ignored ``figures/local/``).

Skipped (with the reason) when /usr/bin/chromium or playwright is missing; ``.ci/run`` installs chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
NEW_TEMPERATURE = "20"

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


def _require_browser_stack() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (install Debian's chromium: apt-get install -y chromium; .ci/run does)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("Python playwright is not installed (pip install playwright; never `playwright install`)")
    for module in ("jupyterlab", "ipywidgets", "jupyterlab_widgets", "jupytext"):
        pytest.importorskip(module, reason=f"{module} is needed to run the explorer notebook in JupyterLab")


# ------------------------------------------------------------------------------------ notebook
def _notebook_03() -> Path | None:
    found = sorted((ROOT / "notebooks").glob("03_*.py"))
    return found[0] if found else None


def _has_explorer(source: Path) -> bool:
    text = source.read_text()
    return "Explorer(" in text and "EXPLORER CELL: the interactive explorer is added here" not in text


def build_notebook(folder: Path) -> tuple[Path, str]:
    """Write the notebook to open; returns (path, description)."""
    import jupytext
    import nbformat

    source = _notebook_03()
    if source is not None and _has_explorer(source):
        nb = jupytext.read(source)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        params = {"profile": "smoke", "figures_dir": str(folder / "figures")}
        index = next((i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])), None)
        assert index is not None, f"{source.name} has no cell tagged 'parameters'"
        injected = nbformat.v4.new_code_cell(
            "# Parameters (injected by the browser test, as papermill does)\n"
            + "".join(f"{k} = {v!r}\n" for k, v in params.items()))
        injected.metadata["tags"] = ["injected-parameters"]
        nb.cells.insert(index + 1, injected)
        what = f"{source.name} (smoke profile)"
    else:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.cells = [
            nbformat.v4.new_markdown_cell("# Explorer (browser test)"),
            nbformat.v4.new_code_cell("from vsmlab.lab.widgets import Explorer\n\nexplorer = Explorer()\nexplorer"),
        ]
        what = "a minimal notebook displaying vsmlab.lab.widgets.Explorer (notebook 03 has no explorer yet)"
    path = folder / "explorer.ipynb"
    nbformat.write(nb, path)
    return path, what


# -------------------------------------------------------------------------------------- server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lab_environment(tmp: Path) -> dict[str, str]:
    """Private Jupyter folders; sys.prefix/share/jupyter (lab extensions, kernels) stays on the data path."""
    env = dict(os.environ)
    dirs = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
            "JUPYTERLAB_SETTINGS_DIR": "lab-settings", "JUPYTERLAB_WORKSPACES_DIR": "lab-workspaces",
            "IPYTHONDIR": "ipython", "MPLCONFIGDIR": "mpl"}
    for var, name in dirs.items():
        (tmp / name).mkdir(parents=True, exist_ok=True)
        env[var] = str(tmp / name)
    for var in ("JUPYTER_PATH", "JUPYTER_PREFER_ENV_PATH", "JUPYTER_NO_CONFIG"):
        env.pop(var, None)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    settings = tmp / "lab-settings" / "@jupyterlab"
    user_settings = {
        "apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
        # every cell stays in the DOM (the default windowing detaches cells outside the viewport)
        "notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    }
    for rel, value in user_settings.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(json.dumps(value))
    return env


def descendants(pid: int) -> list[int]:
    """All live descendant pids of ``pid`` (Linux /proc), children first."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                kids = [int(c) for c in children.read_text().split()]
            except OSError:
                continue
            out.extend(kids)
            todo.extend(kids)
    return out


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server (it shuts its kernels down), SIGKILL if it hangs, then kill any process it started
    that outlived it (kernels and helpers: the descendants recorded before the signal)."""
    started = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def wait_for_server(proc: subprocess.Popen, port: int, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2) as resp:
                if resp.status == 200:
                    return
        except Exception:
            time.sleep(0.5)
    raise AssertionError(f"JupyterLab did not answer on port {port} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


# ------------------------------------------------------------------------------------- browser
class Lab:
    """One JupyterLab server (root: a temporary project folder with notebooks/ and figures/, a git repository)
    and one headless Chromium, shared by every test of this module."""

    def __init__(self, project: Path, port: int, browser) -> None:
        self.project, self.port, self.browser = project, port, browser
        self.pages = 0

    def open(self, relpath: str):
        """A new page with ``relpath`` (relative to the project) open and its kernel idle."""
        page = self.browser.new_page(viewport={"width": 1400, "height": 1100})
        # a workspace of its own, reset: no layout restored from an earlier page, no "open in another tab" dialog
        self.pages += 1
        page.goto(f"http://127.0.0.1:{self.port}/lab/workspaces/test{self.pages}/tree/{relpath}?reset", timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')", timeout=120_000)
        page.wait_for_function(
            "() => { const w = window.jupyterapp.shell.currentWidget;"
            " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
            " return k && k.status === 'idle'; }", timeout=120_000)
        return page


def _git(project: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=test@vsmlab", "-c", "user.name=vsmlab test", *args], cwd=project,
                          check=True, capture_output=True, text=True, timeout=60).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Start one JupyterLab + Chromium for the module; always stop the server and kill what it started."""
    _require_browser_stack()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    tmp = tmp_path_factory.mktemp("browser")
    project = tmp / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "figures").mkdir()
    env = lab_environment(tmp / "jupyter")
    check = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], env=env, capture_output=True,
                           text=True, timeout=120)
    assert "@jupyter-widgets/jupyterlab-manager" in check.stdout + check.stderr, (
        "the ipywidgets JupyterLab extension (jupyterlab_widgets) is not discoverable with the test's Jupyter "
        f"folders:\n{check.stdout}\n{check.stderr}")
    port = free_port()
    log = tmp / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--ServerApp.token=", "--ServerApp.password=",
           "--allow-root", f"--ServerApp.root_dir={project}", "--LabApp.expose_app_in_browser=True"]
    with open(log, "w") as log_fh:
        proc = subprocess.Popen(cmd, env=env, cwd=project, stdout=log_fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    pw = None
    try:
        wait_for_server(proc, port, log)
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield Lab(project, port, browser)
        finally:
            browser.close()
    finally:
        if pw is not None:
            pw.stop()
        stop_server(proc)
        shutil.copyfile(log, ARTIFACTS / "browser_jupyterlab.log")
        assert proc.poll() is not None, "the JupyterLab server is still running"


def run_all(page) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def rate_text(page) -> str:
    return page.locator(".vsmlab-explorer .vsmlab-rate").first.inner_text().strip()


def stderr_of(page) -> str:
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    return "\n".join(errors.all_inner_texts())[-3000:]


def type_and_wait(page, readout, value: str, selector: str, contains: str, before: str) -> None:
    """Type ``value`` into a slider's readout as a user would (select all, type, Enter), then wait until the
    element ``selector`` shows text other than ``before`` that contains ``contains``."""
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "([sel, before, contains]) => { const e = document.querySelector(sel);"
        " return e && e.innerText.trim() !== before && e.innerText.includes(contains); }",
        arg=[selector, before, contains], timeout=120_000)


def test_explorer_slider_changes_readout_in_jupyterlab(lab):
    notebook, what = build_notebook(lab.project / "notebooks")
    page = lab.open(f"notebooks/{notebook.name}")
    try:
        run_all(page)
        explorer = page.locator(".vsmlab-explorer", has=page.locator(".vsmlab-temperature")).first
        try:
            explorer.locator(".vsmlab-rate").wait_for(timeout=400_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.vsmlab-explorer .vsmlab-rate')]"
                ".some(e => e.innerText.includes('hallucination rate'))", timeout=120_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser_explorer_failed.png"), full_page=True)
            raise AssertionError(f"the explorer did not appear after running {what}:\n{stderr_of(page)}")
        explorer.scroll_into_view_if_needed()
        before = explorer.locator(".vsmlab-rate").inner_text().strip()
        page.screenshot(path=str(ARTIFACTS / "browser_explorer_before.png"))

        # move the temperature slider: type a new value into its readout, as a user would
        type_and_wait(page, explorer.locator(".vsmlab-temperature .widget-readout"), NEW_TEMPERATURE,
                      ".vsmlab-explorer .vsmlab-rate", "hallucination rate", before)
        after = explorer.locator(".vsmlab-rate").inner_text().strip()
        message = explorer.locator(".vsmlab-message").inner_text().strip()
        slider_value = explorer.locator(".vsmlab-temperature .widget-readout").inner_text().strip()
        page.screenshot(path=str(ARTIFACTS / "browser_explorer.png"))
    finally:
        page.close()

    assert after != before, f"hallucination readout did not change: {before!r}"
    assert re.search(r"hallucination rate \d+\.\d+%", after), after
    assert slider_value.startswith(NEW_TEMPERATURE), f"slider readout shows {slider_value!r}"
    assert message == "", f"the explorer showed a message: {message!r}"


# --------------------------------------------------------------------------- the image explorer
IMAGE_EXPLORER_CELL = (
    "import vsmlab\n"
    "from vsmlab.data.shapes_score import ExactShapesScore\n"
    "from vsmlab.lab.image_explorer import ImageExplorer\n\n"
    "schedule = vsmlab.cosine(1000)\n"
    "explorer = ImageExplorer({'exact': ExactShapesScore(schedule, 32)}, schedule, size=32, num_samples=3, num_steps=20)\n"
    "explorer.widget"
)
NEW_T = "300"


def build_image_explorer_notebook(folder: Path) -> Path:
    """A minimal notebook: the image explorer on the exact 32-px Shapes score, 3 samples, 20 DDPM steps."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Image explorer (browser test)"),
                nbformat.v4.new_code_cell(IMAGE_EXPLORER_CELL)]
    path = folder / "image_explorer.ipynb"
    nbformat.write(nb, path)
    return path


def test_image_explorer_t_slider_changes_readout_in_jupyterlab(lab):
    notebook = build_image_explorer_notebook(lab.project / "notebooks")
    page = lab.open(f"notebooks/{notebook.name}")
    try:
        run_all(page)
        explorer = page.locator(".vsmlab-image-explorer").first
        try:
            page.wait_for_function(
                "() => [...document.querySelectorAll('.vsmlab-image-explorer .vsmlab-step')]"
                ".some(e => e.innerText.includes('t = '))", timeout=300_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser_image_explorer_failed.png"), full_page=True)
            raise AssertionError(f"the image explorer did not appear:\n{stderr_of(page)}")
        explorer.scroll_into_view_if_needed()
        before = explorer.locator(".vsmlab-step").inner_text().strip()
        type_and_wait(page, explorer.locator(".vsmlab-t .widget-readout"), NEW_T,
                      ".vsmlab-image-explorer .vsmlab-step", "t = ", before)
        after = explorer.locator(".vsmlab-step").inner_text().strip()
        labels = explorer.locator(".vsmlab-labels").inner_text().strip()
        message = explorer.locator(".vsmlab-message").inner_text().strip()
        page.screenshot(path=str(ARTIFACTS / "browser_image_explorer.png"))
    finally:
        page.close()

    assert before.startswith("t = 999") and after != before, (before, after)
    assert f"asked t = {NEW_T}" in after, after
    assert labels.startswith("exact: #0"), labels
    assert message == "", f"the image explorer showed a message: {message!r}"


# ------------------------------------------------------------------- Run All never touches figures/
def test_run_all_on_notebook_01_leaves_published_figures_alone(lab):
    """A student's Run All: notebook 01 (smoke-sized settings) in a project whose figures/ is committed to git.
    Every cell runs, an exercise check cell answers, the figures go to the git-ignored figures/local/, and
    `git status -- figures` is clean."""
    import jupytext
    import nbformat

    project = lab.project
    source = sorted((ROOT / "notebooks").glob("01_*.py"))[0]
    nb = jupytext.read(source)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell("# Parameters (injected by the browser test: small settings)\nprofile = 'smoke'\n")
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(index + 1, injected)
    nbformat.write(nb, project / "notebooks" / f"{source.stem}.ipynb")
    published = project / "figures" / source.stem
    published.mkdir(parents=True, exist_ok=True)
    (published / "README.txt").write_text("stands for the published figures\n")
    (project / "figures" / "MANIFEST.json").write_text("{}\n")
    shutil.copyfile(ROOT / ".gitignore", project / ".gitignore")
    _git(project, "init", "-q")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", "published figures")

    page = lab.open(f"notebooks/{source.stem}.ipynb")
    try:
        run_all(page)
        try:
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-OutputArea-output')]"
                ".some(e => /Verdict\\('01\\.\\d', '(right|close|wrong|invalid|open)'\\)/.test(e.innerText))",
                timeout=480_000)
            page.wait_for_function(
                "() => { const w = window.jupyterapp.shell.currentWidget;"
                " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                " return k && k.status === 'idle'; }", timeout=120_000)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "browser_run_all_01_failed.png"), full_page=True)
            raise AssertionError(f"Run All on {source.stem} did not reach an exercise check:\n{stderr_of(page)}")
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").all_inner_texts()
        tracebacks = [e for e in errors if "Traceback" in e]
        verdicts = [t for t in page.locator(".jp-OutputArea-output").all_inner_texts() if "Verdict('01." in t]
        page.screenshot(path=str(ARTIFACTS / "browser_run_all_01.png"))
    finally:
        page.close()

    assert not tracebacks, f"Run All raised:\n{tracebacks[0][-2000:]}"
    assert verdicts, "no exercise check cell answered"
    status = _git(project, "status", "--porcelain", "--", "figures")
    assert status == "", f"Run All changed the committed figures:\n{status}"
    local = list((project / "figures" / "local").rglob("*.png"))
    assert local, "Run All wrote no figure under the git-ignored figures/local/"

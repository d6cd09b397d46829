"""Browser checks: Debian's headless chromium, driven by Selenium through Debian's
chromium-driver (both from apt, stack/superset/install.sh; nothing is downloaded). It logs in
through Superset's login form, opens each provisioned dashboard, waits (explicitly) until
every chart has rendered or failed, records each chart's state (error, warning icon, drawn),
the data each chart's query returned to the browser, and saves a PNG per dashboard."""
from __future__ import annotations

import base64
import contextlib
import json
import logging
import shutil
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterator

import prison
from selenium import webdriver
from selenium.common.exceptions import TimeoutException, WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from ecomlake.config import Config
from ecomlake.ops.bi.client import Client
from ecomlake.ops.bi.provision import dashboards
from ecomlake.ops.bi.server import base_url, credentials

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 1400, 1000
LOGIN_TIMEOUT_S = 60
USERNAME_CSS = "input#username, input[name=username], input[autocomplete=username], input[type=text]"
PASSWORD_CSS = "input[type=password]"
SUBMIT_CSS = "button[type=submit], [data-test=login-button], form button"


def chromium_binary() -> str:
    for candidate in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "",
                      shutil.which("chromium-browser") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("no chromium: run stack/superset/install.sh (apt-get install chromium)")


def chromedriver_binary() -> str:
    for candidate in ("/usr/bin/chromedriver", shutil.which("chromedriver") or ""):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError("no chromedriver: run stack/superset/install.sh "
                       "(apt-get install chromium-driver)")


@contextlib.contextmanager
def chromium(log_file: Path | None = None) -> Iterator[webdriver.Chrome]:
    """A headless chromium session (a fresh profile), with the network events in its
    performance log; quit on exit."""
    opts = Options()
    opts.binary_location = chromium_binary()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--hide-scrollbars", "--mute-audio",
                "--remote-debugging-address=127.0.0.1", f"--window-size={WIDTH},{HEIGHT}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # chromedriver's default (INFO) log holds every command with its arguments: the password
    # typed into the login form too. WARNING and above only (tests/integration/test_security.py
    # scans the stack's logs for every secret).
    service = Service(executable_path=chromedriver_binary(), service_args=["--log-level=WARNING"],
                      log_output=str(log_file) if log_file else None)
    driver = webdriver.Chrome(options=opts, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, timeout: float, what: str, condition: Callable, poll: float = 0.5):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=poll).until(condition)
    except TimeoutException:
        raise RuntimeError(f"chromium: timed out after {timeout:.0f}s waiting for {what} "
                           f"(at {driver.current_url})") from None


def _on_login_page(driver) -> bool:
    return urllib.parse.urlparse(driver.current_url).path.startswith("/login")


def log_in(driver, user: str, pw: str) -> None:
    """Log in through Superset's login form: type into the fields once they take input, wait
    until the form holds what was typed, submit, wait until the page leaves /login."""
    driver.get(f"{base_url()}/login/")
    _wait(driver, LOGIN_TIMEOUT_S, "the login form", lambda d: not _on_login_page(d) or
          d.find_elements(By.CSS_SELECTOR, PASSWORD_CSS))
    if not _on_login_page(driver):
        return                                   # already logged in
    fields = {USERNAME_CSS: user, PASSWORD_CSS: pw}
    for css, value in fields.items():
        el = _wait(driver, LOGIN_TIMEOUT_S, f"the field {css}",
                   EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
        el.clear()
        el.send_keys(value)
    _wait(driver, 10, "the login form to hold the credentials", lambda d: all(
        d.find_element(By.CSS_SELECTOR, css).get_property("value") == v
        for css, v in fields.items()))
    _wait(driver, LOGIN_TIMEOUT_S, "the login button",
          EC.element_to_be_clickable((By.CSS_SELECTOR, SUBMIT_CSS))).click()
    try:
        WebDriverWait(driver, LOGIN_TIMEOUT_S, 0.5).until(lambda d: not _on_login_page(d))
    except TimeoutException:
        raise RuntimeError("chromium: still on Superset's login page: check the admin password "
                           "in .local/stack.env and .local/log/superset.log") from None


# One entry per chart holder on the dashboard page: its title, whether it is still loading,
# whether it shows an error, whether its header shows a warning (Superset's icon for "the
# query reached the row limit", among others), and whether something was drawn
# (canvas/svg/table/big number or Superset's "No results" empty state).
CHART_STATES_JS = r"""
const holders = [...document.querySelectorAll('[data-test="dashboard-component-chart-holder"]')];
return holders.map(h => {
  const title = (h.querySelector('[data-test="editable-title"], .header-title, [data-test="slice-header"]') || {}).innerText || '';
  const text = h.innerText || '';
  const error = !!h.querySelector('.ant-alert-error, [data-test="error-tooltip"], .alert-danger')
    || /Unexpected error|DB engine Error|An error occurred|Error:/.test(text);
  const warnings = [...h.querySelectorAll('[data-test="slice-header"] [aria-label="warning"], [data-test="slice-header"] .anticon-warning, .ant-alert-warning')];
  const loading = !!h.querySelector('.loading, [data-test="loading-indicator"], [aria-label="Loading"]');
  const empty = /No results|No data/.test(text);
  const drawn = !!h.querySelector('canvas, svg, table, .header-line, [data-test="big-number-total"], .superset-legacy-chart-big-number');
  const r = h.getBoundingClientRect();
  return {title: title.trim().split('\n')[0], error, warning: warnings.length > 0, loading,
          empty, drawn, bottom: r.bottom + window.scrollY,
          text: error || warnings.length ? text.slice(0, 500) : ''};
});
"""

# What the charts show, as a string that changes while one is still drawing or animating.
_DRAWING_JS = r"""
const parts = [];
for (const h of document.querySelectorAll('[data-test="dashboard-component-chart-holder"]')) {
  for (const c of h.querySelectorAll('canvas')) {
    const s = c.toDataURL(); let x = 0;
    for (let i = 0; i < s.length; i += 7) x = (x * 31 + s.charCodeAt(i)) | 0;
    parts.push(c.width + 'x' + c.height + ':' + x);
  }
  parts.push(h.innerHTML.length);
}
return parts.join(',');
"""


def _settled(driver, timeout: float, what: str) -> None:
    """Wait until two looks at the charts, half a second apart, see the same drawing (chart
    animations and the re-layout after a resize have ended)."""
    last = [None]

    def same(d):
        now = d.execute_script(_DRAWING_JS)
        done, last[0] = now == last[0], now
        return done
    _wait(driver, timeout, what, same)


def _set_viewport(driver, width: int, height: int) -> None:
    """Size the window so that the page's viewport (what a screenshot holds) is width x height:
    the window's own frame, even headless, takes some of the window's size."""
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    outer = driver.get_window_size()
    driver.set_window_size(width + outer["width"] - inner[0],
                           height + outer["height"] - inner[1])


def filter_url_param(dashboard_key: str, values: dict[str, list]) -> str:
    """The `native_filters` URL parameter (Rison) that opens a dashboard with its native
    filters on `values` ({column: [values]}), as if chosen in the filter bar."""
    parts = {}
    for column, vals in values.items():
        fid = f"NATIVE_FILTER-{dashboard_key}-{column}"
        parts[fid] = {"id": fid, "extraFormData": {"filters": [
                          {"col": column, "op": "IN", "val": list(vals)}]},
                      "filterState": {"value": list(vals)}, "ownState": {}}
    return "native_filters=" + urllib.parse.quote(prison.dumps(parts))


def _network_events(driver) -> list[dict]:
    return [json.loads(e["message"])["message"] for e in driver.get_log("performance")]


def _chart_data(driver, events: list[dict]) -> dict[int, dict]:
    """What each chart asked /api/v1/chart/data for and got, by chart id: {"filters": the
    query's filters (the dashboard's native filters arrive here), "rows": the data of its
    first query}."""
    requests, filters = {}, {}
    for e in events:
        if e.get("method") != "Network.requestWillBeSent":
            continue
        req, request_id = e["params"]["request"], e["params"]["requestId"]
        if "/api/v1/chart/data" not in req["url"] or req.get("method") != "POST":
            continue
        post = req.get("postData")
        try:
            if post is None:
                post = driver.execute_cdp_cmd("Network.getRequestPostData",
                                              {"requestId": request_id})["postData"]
            body = json.loads(post)
        except (WebDriverException, ValueError, KeyError):
            continue
        slice_id = (body.get("form_data") or {}).get("slice_id")
        if slice_id:
            requests[request_id] = int(slice_id)
            filters[int(slice_id)] = [f for q in body.get("queries", [])
                                      for f in q.get("filters", [])]
    out: dict[int, dict] = {}
    for request_id, slice_id in requests.items():
        try:
            res = driver.execute_cdp_cmd("Network.getResponseBody", {"requestId": request_id})
            body = base64.b64decode(res["body"]).decode() if res.get("base64Encoded") \
                else res["body"]
            out[slice_id] = {"filters": filters[slice_id],
                             "rows": json.loads(body)["result"][0]["data"]}
        except (WebDriverException, ValueError, KeyError, IndexError):
            continue
    return out


def screenshots(cfg: Config, out_dir: Path | None = None, *, timeout: float = 120,
                client: Client | None = None,
                filters: dict[str, dict[str, list]] | None = None) -> list[dict]:
    """Log in with headless chromium, open each provisioned dashboard, wait until every chart
    has rendered (or failed), save <out_dir>/<slug>.png. Returns, per dashboard, the state of
    each chart and the data each chart's query returned to the browser (by chart id)."""
    out_dir = Path(out_dir or cfg.stack_dir / "artifacts" / "bi")
    out_dir.mkdir(parents=True, exist_ok=True)
    boards = dashboards(client or Client(cfg))
    user, pw = credentials(cfg)
    results = []
    with chromium(cfg.stack_dir / "log" / "chromedriver.log") as driver:
        log_in(driver, user, pw)
        for board in boards:
            t0 = time.monotonic()
            _network_events(driver)                  # drop what came before this dashboard
            query = f"?{filter_url_param(board['key'], filters[board['key']])}" \
                if filters and board["key"] in filters else ""
            driver.get(f"{base_url()}/superset/dashboard/{board['slug']}/{query}")
            expected = len(board["charts"])
            _wait(driver, timeout, f"the charts of dashboard `{board['title']}`", lambda d: (
                lambda s: len(s) >= expected and all(
                    not c["loading"] and (c["error"] or c["drawn"] or c["empty"]) for c in s))(
                d.execute_script(CHART_STATES_JS)))
            _settled(driver, 30, f"the charts of `{board['title']}` to finish drawing")
            states = driver.execute_script(CHART_STATES_JS)
            height = int(max([s["bottom"] for s in states] + [800])) + 40
            _set_viewport(driver, WIDTH, height)
            _settled(driver, 30, f"`{board['title']}` to lay out at {WIDTH}x{height}")
            png = out_dir / f"{board['slug']}{'-filtered' if query else ''}.png"
            driver.save_screenshot(str(png))
            _set_viewport(driver, WIDTH, HEIGHT)
            results.append({"dashboard": board["title"], "slug": board["slug"],
                            "screenshot": str(png), "charts": states,
                            "seconds": round(time.monotonic() - t0, 1),
                            "data": _chart_data(driver, _network_events(driver))})
    return results

"""The web console (/ui) in a real browser: Debian's headless Chromium driven by Selenium, against the
real ingress (a Serve app of its own on the suite's Ray session) with the fake engine slowed down
enough to watch. Screenshots of a finished deliberation go to $FLEET_SCREENSHOTS (else pytest's tmp).

Leaves out: the real engine (the page only reads the API) and other browsers.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.ray, pytest.mark.timeout(300)]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PREFIX = "/console-tests"  # the app sits below a route prefix, as behind any proxy path
TOKEN = "console-test-token-7f3a"
VISIBLE = "from solution import *\n\n\ndef test_imports():\n    assert True\n"
LATENCY_S = 0.8  # per fake engine call: a 3-agent, 1-round deliberation takes ~6 s plus its checks


def deploy(name: str, **overrides) -> str:
    """The whole fleet app (fake engine + ingress) as a Serve app below PREFIX-name; its base URL."""
    from ray import serve

    from fleet.serve_app import build_app

    fake = {"latency_s": LATENCY_S}  # (per-agent latency and failures need call tags, which Serve's fake never sees)
    args = {"engine": {"kind": "fake", "app_name": name, "fake": fake},
            "coordinator_name": f"{name}-coordinator", "max_tokens": 64, **overrides}
    serve.run(build_app(args), name=name, route_prefix=f"{PREFIX}-{name}")
    return f"{PREFIX}-{name}"


def undeploy(name: str) -> None:
    import ray
    from ray import serve

    serve.delete(name)
    try:  # the ingress's coordinator is detached (it outlives replicas); its agents die with it
        ray.kill(ray.get_actor(f"{name}-coordinator", namespace="fleet"))
    except ValueError:
        pass


def wait_ready(base: str, headers: dict | None = None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/v1/health", timeout=5).json().get("status") == "ok":
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{base} never became healthy")


@pytest.fixture(scope="module")
def console(serve_http):
    """Base URL of a fleet app without a token."""
    path = deploy("fleet-console")
    base = serve_http + path
    wait_ready(base)
    yield base
    undeploy("fleet-console")


@pytest.fixture(scope="module")
def api(console):
    with httpx.Client(base_url=console, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("Debian's chromium and chromium-driver are needed: scripts/setup.sh installs them (as root)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1366,900",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                # background tabs keep their timers and streams (the 20-pages test reads them all)
                "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", "--renderer-process-limit=4"):
        options.add_argument(arg)
    # An explicit driver path: Selenium Manager never runs (no downloads).
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    where = os.environ.get("FLEET_SCREENSHOTS")
    path = Path(where) if where else tmp_path_factory.mktemp("console-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


def choose(select, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(select).select_by_value(value)


def until(driver, condition, timeout: float = 60, what: str = ""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: condition(d), message=what)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def screenshot(driver, path: Path, width: int, height: int | None = None) -> None:
    """The page at exactly width x height CSS pixels (a phone below 720: the narrow layout); no height:
    the whole page."""
    height = height or driver.execute_script("return document.documentElement.scrollHeight")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 720})
    try:
        time.sleep(0.3)  # one layout pass
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def event_seqs(driver) -> list[int]:
    return [int(s) for s in driver.execute_script(
        "return [...document.querySelectorAll('[data-event-seq]')].map(e => e.dataset.eventSeq)")]


def server_events(api: httpx.Client, did: str, headers: dict | None = None) -> list[dict]:
    """Every event of a finished deliberation, as its SSE stream sends them."""
    with api.stream("GET", f"/v1/deliberations/{did}/events", headers=headers or {}) as r:
        return [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]


def start(api: httpx.Client, task: str, **body) -> str:
    r = api.post("/v1/deliberations", json={"task": task, "judge": False, **body})
    assert r.status_code == 202, r.text
    return r.json()["deliberation_id"]


def test_start_from_the_form_and_watch_the_board_reach_its_winner(console, api, browser, shots):
    browser.get(f"{console}/ui#/start")
    until(browser, lambda d: css(d, "#f-role option[value=DEV]"), 30, "the form's roles")
    css(browser, "#f-description")[0].send_keys("Write allow_request(timestamps, now, limit, window_s)")
    css(browser, "#f-requirements")[0].send_keys("Return False past the limit\nNo globals")
    css(browser, "#f-visible")[0].send_keys(VISIBLE)
    css(browser, "#f-num_agents")[0].clear()
    css(browser, "#f-num_agents")[0].send_keys("3")
    css(browser, "form.start button[type=submit]")[0].click()
    until(browser, lambda d: "#/d/" in d.current_url, 30, "the board opens")
    did = browser.current_url.split("#/d/")[1]
    until(browser, lambda d: css(d, "#board[data-status=running]"), 30, "the board, live")
    until(browser, lambda d: css(d, "#board[data-winner]"), 90, "the winner")
    until(browser, lambda d: css(d, "#board[data-record]"), 30, "the stream ends and the record is in")
    board = css(browser, "#board")[0]

    state = api.get(f"/v1/deliberations/{did}").json()
    record = state["record"]
    assert state["status"] == "done" and board.get_attribute("data-winner") == record["selection"]["winner_id"]
    columns = css(browser, "[data-agent-column]")
    assert sorted(c.get_attribute("data-agent-column") for c in columns) == sorted(
        a["agent_id"] for a in record["council"]["agents"])
    winner = css(browser, f"[data-agent-column='{record['selection']['winner_id']}']")[0]
    assert winner.get_attribute("data-state") == "winner"
    # each agent: its draft and any revision (lineage), visible tests and lint, critiques received; a code
    # task revises only what fails (issue 20), so the record says how many revisions there are
    revisions = [p for p in record["proposals"] if p["round"] > 0]
    assert len(css(browser, ".proposal")) == len(record["proposals"]) >= 3
    assert len(css(browser, ".proposal .lineage")) == len(revisions)
    assert len(css(browser, "[data-tests='1/1']")) >= 1
    assert len(css(browser, ".critique")) == len(record["critiques"])
    assert css(browser, "pre.code .tok-kw"), "code is highlighted"
    assert len(css(browser, "#score-table tbody tr")) == len(record["scores"])  # every candidate
    assert record["selection"]["reason"][:40] in css(browser, ".selection")[0].text
    assert sorted(event_seqs(browser)) == list(range(1, len(server_events(api, did)) + 1))

    screenshot(browser, shots / "console-desktop.png", 1366, 900)
    screenshot(browser, shots / "console-desktop-full.png", 1366)
    browser.refresh()  # the same board again, from this tab's stored events
    until(browser, lambda d: css(d, "#board[data-record]"), 30)
    screenshot(browser, shots / "console-phone.png", 390, 844)
    browser.get(f"{console}/ui#/")
    until(browser, lambda d: css(d, f"tr[data-id='{did}'][data-status=done]"), 30, "the list shows it done")
    row = css(browser, f"tr[data-id='{did}']")[0].text
    assert record["selection"]["winner_id"] in row and "DEV" in row
    screenshot(browser, shots / "console-list.png", 1366, 900)


def test_a_reload_mid_deliberation_shows_the_same_board_every_event_once(console, api, browser):
    did = start(api, "Add a cache in front of the pricing service", num_agents=3, rounds=2)
    browser.get(f"{console}/ui#/d/{did}")
    until(browser, lambda d: len(event_seqs(d)) >= 5, 60, "some events")
    assert css(browser, "#board")[0].get_attribute("data-status") == "running"
    browser.refresh()
    shown = int(until(browser, lambda d: (css(d, "#resumed-from") or [None])[0], 30, "resumed").get_attribute(
        "data-resumed-from"))
    assert shown >= 5  # the reload drew the stored events and asked the stream only for the ones after them
    assert api.get(f"/v1/deliberations/{did}").json()["status"] == "running", "the reload was mid-run"
    until(browser, lambda d: css(d, "#board[data-winner]"), 90, "the winner")
    until(browser, lambda d: css(d, "#board[data-record]"), 30, "the record")
    seqs, total = event_seqs(browser), len(server_events(api, did))
    assert len(seqs) == len(set(seqs)), "an event shown twice"
    assert sorted(seqs) == list(range(1, total + 1)), "an event missed"
    assert len(css(browser, ".proposal")) == 9  # 3 drafts, 2 revisions each: each once
    print(f"\nreload mid-run: drew {shown} stored events, then {len(seqs) - shown} from the stream "
          f"(Last-Event-ID {shown}); {len(seqs)} shown, {len(set(seqs))} distinct, the server sent {total}")


def test_cancel_from_the_list(console, api, browser):
    did = start(api, "Rewrite the billing service", num_agents=3, rounds=5)
    browser.get(f"{console}/ui#/")
    button = until(browser, lambda d: (css(d, f"[data-cancel='{did}']") or [None])[0], 30, "a cancel button")
    button.click()
    until(browser, lambda d: css(d, f"tr[data-id='{did}'][data-status=cancelled]"), 30, "the row says cancelled")
    assert api.get(f"/v1/deliberations/{did}").json()["status"] == "cancelled"
    assert not css(browser, f"[data-cancel='{did}']")
    choose(css(browser, "#filter-status")[0], "done")
    until(browser, lambda d: not css(d, f"tr[data-id='{did}']"), 10, "filtered out")
    assert css(browser, "tr[data-status=done]") and not css(browser, "tr[data-status=cancelled]")


def test_a_bad_form_value_shows_the_servers_reason_beside_its_field(console, api, browser, shots):
    before = api.get("/v1/deliberations").json()["total"]
    browser.get(f"{console}/ui#/start")
    until(browser, lambda d: css(d, "#f-role option[value=DEV]"), 30)
    css(browser, "#f-description")[0].send_keys("Add a retry policy")
    css(browser, "#f-num_agents")[0].clear()
    css(browser, "#f-num_agents")[0].send_keys("500")
    css(browser, "#f-hidden")[0].send_keys("def test_broken(:\n    pass\n")
    css(browser, "form.start button[type=submit]")[0].click()
    agents = until(browser, lambda d: (css(d, "[data-error-for=num_agents]:not(:empty)") or [None])[0], 30)
    assert "less than or equal to 32" in agents.text
    assert "does not parse" in css(browser, "[data-error-for=hidden]")[0].text
    assert [css(browser, f"[data-error-for={f}]")[0].text for f in ("visible", "rounds")] == ["", ""]
    screenshot(browser, shots / "console-form-errors.png", 1366, 900)
    assert "#/start" in browser.current_url and api.get("/v1/deliberations").json()["total"] == before


def test_councils_add_and_remove_an_agent(console, api, browser, shots):
    browser.get(f"{console}/ui#/councils")
    form = until(browser, lambda d: (css(d, "form[data-add-agent=QA]") or [None])[0], 30)
    form.find_element("css selector", "[name=lens]").send_keys("You read every error path first.")
    form.find_element("css selector", "[name=temperature]").send_keys("0.2")
    form.find_element("css selector", "button[type=submit]").click()
    added = until(browser, lambda d: (css(d, "[data-council=QA] tr[data-agent='agent-qa-004']") or [None])[0], 30)
    assert "every error path" in added.text and "T 0.2" in added.text
    screenshot(browser, shots / "console-councils.png", 1366, 900)
    assert api.get("/v1/councils/QA").json()["agents"][-1]["sampling"]["temperature"] == 0.2
    added.find_element("css selector", "[data-remove]").click()
    until(browser, lambda d: not css(d, "[data-council=QA] tr[data-agent='agent-qa-004']"), 30, "removed")
    assert [a["agent_id"] for a in api.get("/v1/councils/QA").json()["agents"]] == [
        "agent-qa-001", "agent-qa-002", "agent-qa-003"]


def test_twenty_open_pages_on_running_deliberations_while_health_answers(console, api, browser):
    """A browser holds 6 connections per host: a hidden tab lets go of its stream and catches up (once
    per event) when shown. Without that, the 7th tab's calls would stall behind 6 streams."""
    # 10 review rounds (no visible tests: no early stop) outlast the test; 4 run at once (max_concurrent)
    ids = [start(api, f"Split the monolith, part {i}", role="QA", rounds=10) for i in range(4)]
    first = browser.current_window_handle
    tabs = []
    try:
        for i in range(20):
            browser.switch_to.new_window("tab")
            tabs.append(browser.current_window_handle)
            browser.get(f"{console}/ui#/d/{ids[i % 4]}")
        for tab in tabs:  # each shown in turn: live, caught up, nothing twice
            browser.switch_to.window(tab)
            until(browser, lambda d: len(event_seqs(d)) >= 2 and css(d, "#connection.c-live"), 60, "a live board")
            seqs = event_seqs(browser)
            assert sorted(seqs) == list(range(1, len(seqs) + 1))
        started = time.monotonic()
        health = httpx.get(f"{console}/v1/health", timeout=5)
        assert time.monotonic() - started < 1.0 and health.json()["status"] == "ok"
        assert all(api.get(f"/v1/deliberations/{did}").json()["status"] == "running" for did in ids)
    finally:
        for did in ids:
            api.delete(f"/v1/deliberations/{did}")
        for tab in tabs:
            browser.switch_to.window(tab)
            browser.close()
        browser.switch_to.window(first)


def test_with_a_token_the_page_shows_only_the_sign_in_until_given_it(serve_http, browser, shots):
    path = deploy("fleet-console-auth", api_token=TOKEN)
    base = serve_http + path
    try:
        wait_ready(base)
        assert httpx.get(f"{base}/ui").status_code == 200  # the page holds no data ...
        assert httpx.get(f"{base}/v1/councils").status_code == 401  # ... every data call needs the token
        browser.delete_all_cookies()
        browser.get(f"{base}/ui#/status")
        until(browser, lambda d: css(d, "#sign-in:not([hidden])"), 30, "the sign-in")
        assert not css(browser, "#top:not([hidden])") and css(browser, "#view")[0].text == ""
        screenshot(browser, shots / "console-sign-in.png", 390, 844)
        assert "DEV" not in browser.find_element("css selector", "body").text

        css(browser, "#token")[0].send_keys("not-the-token")
        css(browser, "#sign-in-form button")[0].click()
        until(browser, lambda d: "refused" in css(d, "#sign-in-error")[0].text, 30, "a wrong token is refused")
        assert not css(browser, "#top:not([hidden])")

        css(browser, "#token")[0].send_keys(TOKEN)
        css(browser, "#sign-in-form button")[0].click()
        until(browser, lambda d: css(d, "#status-engine [data-field=model]"), 30, "the status view")
        assert "fake" in css(browser, "#status-engine")[0].text and TOKEN not in browser.current_url
        screenshot(browser, shots / "console-status.png", 1366, 900)
        browser.get(f"{base}/ui#/start")  # a new page load in the same tab keeps the token (sessionStorage)
        until(browser, lambda d: css(d, "#f-role option[value=DEV]"), 30)
        css(browser, "#f-description")[0].send_keys("Add an audit log")
        css(browser, "#f-rounds")[0].clear()
        css(browser, "#f-rounds")[0].send_keys("0")
        css(browser, "form.start button[type=submit]")[0].click()
        until(browser, lambda d: css(d, "#board[data-winner]"), 60, "the winner, through the token")
        assert TOKEN not in browser.current_url
        browser.execute_script("sessionStorage.clear()")
        browser.refresh()
        until(browser, lambda d: css(d, "#sign-in:not([hidden])"), 30, "without the token: the sign-in again")
        assert not css(browser, "[data-agent-column]")
    finally:
        undeploy("fleet-console-auth")


@pytest.fixture(scope="module", autouse=True)
def _keep_screenshots(shots):
    """With FLEET_SCREENSHOTS unset the shots stay in pytest's tmp; say where."""
    yield
    print(f"\nconsole screenshots: {shots}", *sorted(p.name for p in shots.glob("*.png")))


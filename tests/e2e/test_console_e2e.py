"""The operations console in a real browser (Debian's Chromium, driven by
Selenium) against a running mesh through Envoy: an ordinary key cannot open
it, every page loads with no error in the browser's console, the tables and
plots show what the API returns, the prompt actions work after a
confirmation, and the pages update themselves.

With CONSOLE_SCREENSHOTS=<folder> each page is also saved there as a PNG
(`make screenshots` writes the README's into docs/console)."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import grpc
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from tilores_x.v1 import optimizer_pb2, optimizer_pb2_grpc, process_pb2, process_pb2_grpc

from tests.e2e.conftest import API_KEY, http_json, record_weak_credit_answers, start_local_mesh

pytestmark = pytest.mark.e2e

PAGES = ["mesh", "quality", "experiments", "prompts", "access"]
DEMO_PROMPT = "console_demo"
TRIAL_PROMPT = "console_trial"
FIRST = "Answer from the data only.\n\n{context}"
SECOND = "Answer from the data only.\nLead with the figure asked for.\n\n{context}"
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS", "")


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    mesh = start_local_mesh(tmp_path_factory.mktemp("console"), QUALITY_CHECK_INTERVAL_S="0.3", ROUTER_PROMPT_TTL_S="0")
    yield mesh
    mesh.stop()


@pytest.fixture(scope="module")
def activity(mesh):
    """What an afternoon leaves behind: chats about a customer, credit
    answers scoring low (an alert and an improvement cycle with its
    experiment), outcomes for that experiment's arms, a prompt with two
    versions, and an evaluation run."""
    admin = mesh.admin_key
    began = time.time()
    for question in ("What is the status of edwina.hawthorne@example.com?", "Her last payment?") * 2:
        status, _ = http_json("POST", f"{mesh.rest_url}/v1/chat/completions", {
            "model": "offline", "messages": [{"role": "user", "content": question}],
        })  # fmt: skip
        assert status == 200
    with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
        optimizer = optimizer_pb2_grpc.OptimizerServiceStub(channel)
        metadata = (("x-mesh-service", "optimizer"),)
        record_weak_credit_answers(optimizer, metadata, category="credit")
        status_url = f"{mesh.rest_url}/v1/virtuous-cycle/status"
        deadline = time.monotonic() + 30
        while not (cycles := http_json("GET", status_url, key=admin)[1].get("cycles")):
            assert time.monotonic() < deadline, "no improvement cycle started"
            time.sleep(0.2)
        experiment = cycles[0]["experiment"]
        for n in range(120):
            chosen = optimizer.GetPrompt(
                optimizer_pb2.GetPromptRequest(name="customer", conversation_id=f"conv-{n}"), metadata=metadata
            )
            optimizer.RecordOutcome(
                optimizer_pb2.RecordOutcomeRequest(
                    completion_id=f"chatcmpl-arm-{n}", prompt="customer", version=chosen.version,
                    experiment_id=chosen.experiment_id, category="credit", score=0.7 + (n % 7) * 0.03,
                ),
                metadata=metadata,
            )  # fmt: skip
    for template in (FIRST, SECOND):
        status, body = http_json(
            "POST", f"{mesh.rest_url}/v1/prompts/{DEMO_PROMPT}/versions", {"template": template}, key=admin
        )
        assert status == 200, body
    # An experiment an operator started by hand, still running.
    for template in (FIRST, SECOND):
        status, body = http_json(
            "POST", f"{mesh.rest_url}/v1/prompts/{TRIAL_PROMPT}/versions", {"template": template}, key=admin
        )
        assert status == 200, body
    status, trial = http_json("POST", f"{mesh.rest_url}/v1/experiments", {
        "prompt": TRIAL_PROMPT, "arms": [{"version": 1}, {"version": 2}], "min_samples": 500,
    }, key=admin)  # fmt: skip
    assert status == 200, trial
    # Sixty answers about sixty customers: more looks than one page of the access log holds.
    batch = [
        {"custom_id": f"c{n}", "body": {"model": "offline", "messages": [
            {"role": "user", "content": f"Status of client id {2_000_000 + 38 * n}?"}]}}
        for n in range(1, 61)
    ]  # fmt: skip
    status, answers = http_json("POST", f"{mesh.rest_url}/v1/chat/batch", {"requests": batch, "concurrency": 8})
    assert status == 200 and not [a for a in answers["data"] if a.get("error")], answers
    status, run = http_json("POST", f"{mesh.rest_url}/v1/evaluations", {
        "models": ["offline"], "customers": ["edwina.hawthorne@example.com"], "questions": 14,
    }, key=admin)  # fmt: skip
    assert status == 202, run
    run_id = run["run"]["id"]
    deadline = time.monotonic() + 60
    while http_json("GET", f"{mesh.rest_url}/v1/evaluations/{run_id}", key=admin)[1]["run"]["state"] == "running":
        assert time.monotonic() < deadline, "the evaluation did not finish"
        time.sleep(0.3)
    return {"experiment_id": experiment["id"], "trial_id": trial["experiment"]["id"], "run_id": run_id, "began": began}


@pytest.fixture(scope="module")
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Chromium is missing: `make test` installs Debian's chromium and chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(driver))
    yield driver
    driver.quit()


def console_errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


def sign_in(browser, mesh, key: str) -> None:
    # Forget the last test's key on a page of the same origin that runs no
    # script: the console itself would sign in with it and ask for data.
    browser.get(f"{mesh.rest_url}/console/console.css")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{mesh.rest_url}/console")
    browser.find_element(By.ID, "key").send_keys(key)
    browser.find_element(By.CSS_SELECTOR, "#login-form button").click()


def open_page(browser, mesh, page: str) -> None:
    """Go to a page and wait until it has drawn what the API returned."""
    before = browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") or ""
    browser.get(f"{mesh.rest_url}/console#{page}")
    wait(browser, 15).until(
        lambda b: (
            (loaded := b.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") or "").startswith(f"{page}:")
            and loaded != before
        )
    )


def wait(browser, seconds: float = 10) -> WebDriverWait:
    """A wait that looks again when the page has just redrawn what it read."""
    return WebDriverWait(browser, seconds, ignored_exceptions=(StaleElementReferenceException, NoSuchElementException))


def click(browser, selector: str) -> None:
    """Click what the selector finds now: a page redraws itself every few
    seconds, so an element found a moment ago may have been replaced."""

    def clicked(b) -> bool:
        try:
            b.find_element(By.CSS_SELECTOR, selector).click()
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait(browser).until(clicked)


def type_into(browser, selector: str, text: str) -> None:
    """Type into a field (a page does not redraw while a field has focus)."""

    def typed(b) -> bool:
        try:
            b.find_element(By.CSS_SELECTOR, selector).send_keys(text)
        except (StaleElementReferenceException, NoSuchElementException):
            return False
        return True

    wait(browser).until(typed)


def card_rows(browser, title: str) -> dict[str, str]:
    """A card's table rows by their first cell."""
    rows = browser.find_elements(
        By.XPATH, f"//div[contains(@class, 'card')][h3[starts-with(., \"{title}\")]]//tbody/tr"
    )
    return {r.find_elements(By.TAG_NAME, "td")[0].text: r.text for r in rows}


def seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def texts(browser, selector: str) -> list[str]:
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, selector)]


def shoot(browser, page: str) -> None:
    """The whole page, however long, as a PNG in CONSOLE_SCREENSHOTS."""
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(1400, min(2400, max(1000, height + 20)))
        browser.save_screenshot(str(Path(SCREENSHOTS) / f"{page}.png"))
        browser.set_window_size(1400, 1000)


def test_the_page_and_its_assets_come_from_the_mesh_with_a_strict_policy(mesh):
    with urllib.request.urlopen(f"{mesh.rest_url}/console", timeout=10) as reply:
        page = reply.read().decode()
        policy = reply.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "http" not in page.replace(f"{mesh.rest_url}", "")  # no asset from elsewhere
    for asset in (
        "console.js",
        "console.css",
        "vendor/uPlot.iife.min.js",
        "vendor/uPlot.min.css",
        "vendor/diff.min.js",
    ):
        with urllib.request.urlopen(f"{mesh.rest_url}/console/{asset}", timeout=10) as reply:
            assert reply.status == 200 and reply.read()
    # Only the console's own files: nothing else of the gateway's folder.
    for path in ("/console/console.py", "/console/__init__.py", "/console/vendor", "/console/index.html.bak"):
        status, body = http_json("GET", f"{mesh.rest_url}{path}")
        assert status == 404 and body["error"]["code"] == "unknown_url", path


def test_an_ordinary_key_cannot_open_the_console(mesh, browser):
    sign_in(browser, mesh, API_KEY)
    error = wait(browser).until(lambda b: b.find_element(By.ID, "login-error").text)
    assert error == "This key cannot open the console: it lacks the admin scope."
    assert not browser.find_element(By.ID, "nav").is_displayed()
    assert not browser.find_element(By.ID, "page").is_displayed()
    # Nor does the API behind it answer that key.
    status, body = http_json("GET", f"{mesh.rest_url}/v1/console/mesh")
    assert status == 403 and "admin" in body["error"]["message"]
    sign_in(browser, mesh, "sk-not-a-key-at-all")
    assert wait(browser).until(lambda b: b.find_element(By.ID, "login-error").text) == "This key is not valid."
    assert console_errors(browser) == [] or all(
        "401" in e["message"] or "403" in e["message"] for e in console_errors(browser)
    )


def test_every_page_loads_without_errors_and_shows_what_the_api_returns(mesh, browser, activity):
    admin = mesh.admin_key
    sign_in(browser, mesh, admin)
    wait(browser).until(lambda b: b.find_element(By.ID, "nav").is_displayed())
    assert texts(browser, "#nav a") == ["Mesh", "Quality", "Experiments", "Prompts", "Access log"]
    browser.get_log("browser")  # the sign-in's refused keys above are not this test's

    open_page(browser, mesh, "mesh")
    _, detail = http_json("GET", f"{mesh.rest_url}/v1/console/mesh", key=admin)
    services = card_rows(browser, "Services and replicas")
    for service, state in detail["services"].items():
        assert state["status"] in services[service]
    breakers = card_rows(browser, "Model providers' circuit breakers")
    assert "offline" in breakers and "closed" in breakers["offline"]
    replicas = browser.find_elements(By.XPATH, "//div[@class='card'][h3[starts-with(., 'Replicas')]]//tbody/tr")
    expected = [(name, r["address"]) for name, s in detail["services"].items() for r in s.get("replicas", [])]
    assert [tuple(r.text.split()[:2]) for r in replicas] == expected
    shoot(browser, "mesh")

    open_page(browser, mesh, "quality")
    # By default the range the data fills: a young mesh's minutes span the chart, not a dot in a day.
    _, history = http_json("GET", f"{mesh.rest_url}/v1/quality/history?group=category", key=admin)
    keys = [s["key"] for s in history["series"]]
    assert "credit" in keys
    assert browser.find_element(By.ID, "quality-hours").get_attribute("value") == "fit"
    chart = browser.find_element(By.CSS_SELECTOR, "#quality-chart .uplot")
    assert chart.get_attribute("data-series") == str(len(keys) + 4)  # a line per category and the four levels
    assert browser.find_elements(By.CSS_SELECTOR, "#quality-chart canvas")
    start, end = float(chart.get_attribute("data-from")), float(chart.get_attribute("data-to"))
    began = activity["began"]  # before the first scored turn
    assert began - 15 <= start <= began + 5 and end - start < 600, (began, start, end)  # at least ten seconds
    assert (seconds(history["since"]), seconds(history["until"])) == pytest.approx((start, end), abs=2)
    # The legend names each series with its latest value before any hover.
    legend = {
        row.find_element(By.CSS_SELECTOR, "th").text: row.find_element(By.CSS_SELECTOR, "td").text
        for row in browser.find_elements(By.CSS_SELECTOR, "#quality-chart .u-legend tr.u-series")[1:]
    }
    assert set(keys) <= set(legend) and "warning" in legend
    for s in history["series"]:
        assert legend[s["key"]] == f"{s['points'][-1]['mean']:.3f}", (s["key"], legend)
    _, quality = http_json("GET", f"{mesh.rest_url}/v1/quality", key=admin)
    credit_alerts = [a for a in quality["alerts"] if a["key"] == "quality:category:credit"]
    assert credit_alerts and any(credit_alerts[0]["message"] in t for t in texts(browser, ".card tbody tr"))
    shoot(browser, "quality")

    open_page(browser, mesh, "experiments")
    # Every experiment, the running one started by hand first, with its state and arms.
    _, listed = http_json("GET", f"{mesh.rest_url}/v1/experiments", key=admin)
    rows = card_rows(browser, "Experiments")
    assert list(rows) == [f"#{x['id']}" for x in listed["experiments"]]
    assert next(iter(rows)) == f"#{activity['trial_id']}" and "running" in rows[f"#{activity['trial_id']}"]
    assert TRIAL_PROMPT in rows[f"#{activity['trial_id']}"] and "v2 50 %" in rows[f"#{activity['trial_id']}"]
    assert f"#{activity['experiment_id']}" in rows
    # The cycle's experiment, opened by a click: its arms drawn.
    click(browser, f'.experiment-link[data-id="{activity["experiment_id"]}"]')
    wait(browser).until(lambda b: f"Experiment #{activity['experiment_id']} ·" in b.page_source)
    _, reply = http_json("GET", f"{mesh.rest_url}/v1/experiments/{activity['experiment_id']}", key=admin)
    arms = reply["experiment"]["arms"]
    drawn = browser.find_elements(By.CSS_SELECTOR, "svg.arms g.arm")
    assert [g.get_attribute("data-version") for g in drawn] == [str(a["version"]) for a in arms]
    assert any(a["scored"] > 1 for a in arms) and browser.find_elements(By.CSS_SELECTOR, "svg.arms g.arm line")
    assert reply["experiment"]["decision"] in browser.find_element(By.CSS_SELECTOR, ".decision").text
    # Evaluation runs listed newest first; one opened by a click.
    _, runs = http_json("GET", f"{mesh.rest_url}/v1/evaluations", key=admin)
    listed_runs = card_rows(browser, "Evaluation runs")
    assert list(listed_runs) == [r["id"] for r in runs["runs"]]
    assert "succeeded" in listed_runs[activity["run_id"]] and "offline" in listed_runs[activity["run_id"]]
    click(browser, f'.evaluation-link[data-id="{activity["run_id"]}"]')
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "table.heat td"))
    _, run = http_json("GET", f"{mesh.rest_url}/v1/evaluations/{activity['run_id']}", key=admin)
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.heat td")) == len(run["run"]["cells"])
    shoot(browser, "experiments")

    open_page(browser, mesh, "prompts")
    click(browser, f'.prompt-link[data-name="{DEMO_PROMPT}"]')
    wait(browser).until(lambda b: f"{DEMO_PROMPT}: versions" in b.page_source)
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".diff ins"))
    assert browser.find_element(By.CSS_SELECTOR, ".diff ins").text.strip() == "Lead with the figure asked for."
    shoot(browser, "prompts")

    open_page(browser, mesh, "access")
    # A page at a time, each customer named beside the id.
    rows = texts(browser, ".card tbody tr")
    assert len(rows) == 50 and browser.find_element(By.ID, "access-older").is_enabled()
    assert browser.execute_script("return document.documentElement.scrollHeight") < 5000
    shown = [cell.rsplit(" ", 1) for cell in texts(browser, ".card tbody tr td:nth-child(3)")]
    ids = list(dict.fromkeys(entity_id for _, entity_id in shown))
    _, names = http_json("POST", f"{mesh.rest_url}/v1/customer-names", {"entity_ids": ids}, key=admin)
    named = {n["entity_id"]: n["name"] for n in names["data"]}
    assert len(named) == len(ids) and all(name == named[entity_id] for name, entity_id in shown), shown[:3]
    click(browser, "#access-older")
    wait(browser).until(lambda b: "page 2" in b.find_element(By.CSS_SELECTOR, ".pager").text)
    older = texts(browser, ".card tbody tr")
    assert older and not set(older) & set(rows)
    click(browser, "#access-newest")
    wait(browser).until(lambda b: "page 1" in b.find_element(By.CSS_SELECTOR, ".pager").text)
    # Filtered by what the operator knows: her e-mail.
    filtered_at = time.time()
    type_into(browser, "#access-customer", "edwina.hawthorne@example.com")
    click(browser, "#access-filter button")
    _, only = http_json(
        "GET", f"{mesh.rest_url}/v1/access-log?limit=50&customer=edwina.hawthorne%40example.com", key=admin
    )
    edwina = only["customers"][0]["entity_id"]
    wait(browser).until(
        lambda b: (
            (cells := texts(b, ".card tbody tr td:nth-child(3)"))
            and all(c == f"Edwina Hawthorne {edwina}" for c in cells)
        )
    )
    shoot(browser, "access")
    # The page refreshes itself; the lookup by e-mail is on record once, not at every refresh.
    loaded = browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
    wait(browser, 15).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") != loaded)
    _, looks = http_json(
        "GET", f"{mesh.rest_url}/v1/access-log?entity_id={edwina}&since={filtered_at - 0.5}&limit=100", key=admin
    )
    lookups = [r for r in looks["data"] if r["action"] == "access_log.lookup"]
    assert len(lookups) == 2, lookups  # the console's, and this test's own above

    assert console_errors(browser) == []


def test_activating_and_rolling_back_a_prompt_ask_first_then_act(mesh, browser, activity):
    admin = mesh.admin_key
    sign_in(browser, mesh, admin)
    wait(browser).until(lambda b: b.find_element(By.ID, "nav").is_displayed())
    open_page(browser, mesh, "prompts")
    click(browser, f'.prompt-link[data-name="{DEMO_PROMPT}"]')
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, 'button.activate[data-version="2"]'))

    def active() -> int:
        return http_json("GET", f"{mesh.rest_url}/v1/prompts/{DEMO_PROMPT}", key=admin)[1]["active_version"]

    assert active() == 1
    # Cancelled: nothing happens.
    click(browser, 'button.activate[data-version="2"]')
    assert browser.find_element(By.ID, "confirm").is_displayed()
    assert "Make v2 the active version" in browser.find_element(By.ID, "confirm-text").text
    browser.find_element(By.ID, "confirm-cancel").click()
    assert active() == 1
    # Confirmed: v2 is active.
    click(browser, 'button.activate[data-version="2"]')
    browser.find_element(By.ID, "confirm-ok").click()
    wait(browser).until(lambda b: b.find_element(By.ID, "prompt-message").text == "v2 is now active.")
    assert active() == 2
    # Roll back, with a reason, which the history keeps.
    click(browser, "#rollback")
    browser.find_element(By.ID, "confirm-reason").send_keys("wordier answers")
    browser.find_element(By.ID, "confirm-ok").click()
    wait(browser).until(lambda b: b.find_element(By.ID, "prompt-message").text == "Rolled back.")
    assert active() == 1
    history = http_json("GET", f"{mesh.rest_url}/v1/prompts/{DEMO_PROMPT}", key=admin)[1]["history"]
    assert history[-1]["action"] == "rolled_back" and "wordier answers" in history[-1]["detail"]
    assert console_errors(browser) == []


def test_pages_update_themselves_without_a_reload(mesh, browser, activity):
    sign_in(browser, mesh, mesh.admin_key)
    wait(browser).until(lambda b: b.find_element(By.ID, "nav").is_displayed())
    open_page(browser, mesh, "mesh")
    browser.execute_script("window.stayed = true")  # gone if the page reloads
    first = browser.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
    try:
        wait(browser, 15).until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") != first)
    except TimeoutException:
        pytest.fail("the mesh page did not refresh itself")
    assert browser.execute_script("return window.stayed") is True
    # Rates need two readings: after a refresh the traffic chart is drawn and every replica has a call rate.
    wait(browser, 15).until(lambda b: b.find_elements(By.CSS_SELECTOR, "#edge-chart .uplot"))
    wait(browser, 15).until(
        lambda b: all(row.split()[4].replace(".", "").isdigit() for row in card_rows(b, "Replicas").values())
    )
    assert console_errors(browser) == []


@pytest.mark.parametrize(
    "query, param",
    [
        ("group=nope", "group"),
        ("hours=abc", "hours"),
        ("hours=0", "hours"),
        ("points=2.5", "points"),
        ("colour=red", "colour"),
    ],
)
def test_quality_history_refuses_bad_input_by_name(mesh, query, param):
    status, body = http_json("GET", f"{mesh.rest_url}/v1/quality/history?{query}", key=mesh.admin_key)
    assert status == 400 and body["error"]["param"] == param, body
    status, body = http_json("GET", f"{mesh.rest_url}/v1/quality/history")  # an ordinary key
    assert status == 403


def test_every_replica_reports_its_own_figures(mesh, activity):
    # Through Envoy's gRPC port, naming the service as for health checks.
    request = process_pb2.GetProcessStatsRequest()
    for service in ("router", "llm_gateway", "optimizer", "cache", "tilores_data", "audit"):
        with grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials()) as channel:
            stats = process_pb2_grpc.ProcessServiceStub(channel).GetProcessStats(
                request, metadata=(("x-mesh-service", service),), timeout=5
            )
        assert stats.service == service and stats.uptime_s > 0 and stats.rss_bytes > 10_000_000
        assert stats.rpcs > 0 and stats.rpc_seconds > 0
    # It is operational data: the ops.read scope, like health detail.
    with (
        grpc.secure_channel(mesh.grpc_addr, mesh.client_credentials("client", "holds-chat")) as channel,
        pytest.raises(grpc.RpcError) as refused,
    ):
        process_pb2_grpc.ProcessServiceStub(channel).GetProcessStats(
            request, metadata=(("x-mesh-service", "router"),), timeout=5
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The console's view: every service's replicas, each with its figures.
    _, detail = http_json("GET", f"{mesh.rest_url}/v1/console/mesh", key=mesh.admin_key)
    for service in ("router", "llm_gateway", "optimizer", "cache", "tilores_data", "audit"):
        (replica,) = detail["services"][service]["replicas"]
        assert replica["serving"] is True and replica["stats"]["service"] == service, replica
        assert replica["stats"]["rpcs"] > 0


def test_a_disabled_roll_back_looks_disabled(mesh, browser, activity):
    admin = mesh.admin_key
    for prompt, templates in (("console_single", [FIRST]), ("console_rolled", [FIRST, SECOND])):
        for template in templates:
            status, body = http_json(
                "POST",
                f"{mesh.rest_url}/v1/prompts/{prompt}/versions",
                {"template": template, "activate": True},
                key=admin,
            )
            assert status == 200, body
    # console_rolled: v2 active after v1, so a rollback has somewhere to go; console_single: nowhere.
    rolled = http_json("GET", f"{mesh.rest_url}/v1/prompts/console_rolled", key=admin)[1]
    single = http_json("GET", f"{mesh.rest_url}/v1/prompts/console_single", key=admin)[1]
    assert (rolled["rollback_version"], single["rollback_version"]) == (1, None)
    sign_in(browser, mesh, admin)
    wait(browser).until(lambda b: b.find_element(By.ID, "nav").is_displayed())
    open_page(browser, mesh, "prompts")

    def rollback_style(prompt: str) -> tuple[bool, str, str]:
        click(browser, f'.prompt-link[data-name="{prompt}"]')
        wait(browser).until(lambda b: f"{prompt}: versions" in b.page_source)
        button = browser.find_element(By.ID, "rollback")
        return (
            button.is_enabled(),
            button.value_of_css_property("background-color"),
            button.value_of_css_property("cursor"),
        )

    enabled, active_colour, active_cursor = rollback_style("console_rolled")
    assert enabled and active_cursor == "pointer"
    assert "v1" in browser.find_element(By.ID, "rollback").get_attribute("title")
    enabled, colour, cursor = rollback_style("console_single")  # nothing to roll back to
    assert not enabled and cursor == "not-allowed"
    assert colour != active_colour and colour == "rgba(236, 238, 242, 1)"  # grey, not the red of an active one
    assert "Nothing to roll back to" in browser.find_element(By.ID, "rollback").get_attribute("title")
    assert console_errors(browser) == []

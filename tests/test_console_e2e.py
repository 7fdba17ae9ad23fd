"""The console (/console) and the API reference (/docs) in a real headless Chromium against
`newsfeed serve --demo`, with real data: the demo corpus, two running experiments with
simulated traffic through the API (one healthy, one whose treatment loses users: a sample
ratio mismatch), a stopped and a draft one, and RSS sources on a local feed server (one
healthy, one failing, one disabled).

Each view is checked against the API's numbers and saved as screenshots at desktop and phone
widths under var/screenshots/ (SCREENSHOTS); any browser console error fails the test,
except the one response a test provokes on purpose. Needs Debian's chromium and
chromium-driver (`.ci/run` installs them in CI) and selenium.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from feed.experiments import Experiment, Variant, assign
from tests.browser import BROWSER_TESTS, WAIT, chromium
from tests.feedserver import FeedServer, feed_server
from tests.live import REPO, LiveService, serve

SCREENSHOTS = REPO / "var" / "screenshots"
DESKTOP = (1280, 900)
PHONE = (390, 844)  # a phone's CSS pixels
MAX_SCREENSHOT_HEIGHT = 6000

pytestmark = BROWSER_TESTS
pytest.importorskip("selenium", reason="needs selenium (pip install selenium)")

from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


@dataclass(frozen=True)
class Plan:
    """An experiment and the traffic simulated for it: each variant's click probability, and
    the share of a variant's users whose client never asks for a feed (the SRM's cause)."""

    definition: dict[str, Any]
    click_rates: dict[str, float]
    lost: dict[str, float]


AB = Plan(
    {
        "name": "fresh-vs-tfidf",
        "variants": [
            {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
            {"name": "fresh", "ranker": "latest", "params": {"mmr_lambda": 0.7}, "weight": 1},
        ],
        "traffic": 1.0,
        "namespace": [0.0, 0.45],
    },
    {"control": 0.06, "fresh": 0.12},
    {},
)
SRM = Plan(
    {
        "name": "popular-srm",
        "variants": [
            {"name": "control", "ranker": "tfidf", "params": {}, "weight": 1},
            {"name": "popular", "ranker": "popular", "params": {}, "weight": 1},
        ],
        "traffic": 1.0,
        "namespace": [0.5, 1.0],
    },
    {"control": 0.08, "popular": 0.08},
    {"popular": 0.6},
)
FREE_NAMESPACE = ("0.45", "0.5")  # between the two running experiments: the form's own
READERS = 320
PAGE = 10
RSS = """<?xml version="1.0"?>
<rss version="2.0"><channel><title>Local Wire</title>
<item><title>Local council approves the new tram line</title>
<link>https://local.example.com/tram</link><description>The vote was close.</description>
<pubDate>{date}</pubDate></item>
<item><title>Library opens a maker space for teenagers</title>
<link>https://local.example.com/library</link><description>3D printers and more.</description>
<pubDate>{date}</pubDate></item>
</channel></rss>"""


@dataclass
class Console:
    base: str
    live: LiveService
    admin: dict[str, str]
    feeds: FeedServer

    def api(self, method: str, path: str, body: Any = None) -> Any:
        reply = self.live.call(method, path, headers=self.admin, json_body=body)
        assert reply.status < 400, (method, path, reply.status, reply.body)
        return reply.body


def token(live: LiveService, user: str | None = None) -> dict[str, str]:
    path = f"/dev/token?user={user}" if user else "/dev/token?admin=true"
    reply = live.call("GET", path)
    assert reply.status == 200, reply.body
    return {"Authorization": f"Bearer {reply.body['token']}"}


def simulate(live: LiveService, plans: list[Plan], readers: int) -> dict[str, int]:
    """Readers follow two categories, read their first page, and send its impressions and
    their clicks, through the API; answers how many were served per experiment."""
    rng = random.Random(15)
    running = [
        Experiment(
            p.definition["name"],
            tuple(
                Variant(v["name"], v["ranker"], v["params"], v["weight"])
                for v in p.definition["variants"]
            ),
            p.definition["traffic"],
            salt=p.definition["name"],
            namespace=tuple(p.definition["namespace"]),
        )
        for p in plans
    ]
    by_name = {p.definition["name"]: p for p in plans}
    categories = [c["slug"] for c in live.call("GET", "/v1/categories").body["categories"]]
    served: dict[str, int] = {}
    for n in range(readers):
        user = f"sim-{n}"
        place = assign(running, user)
        plan = by_name[place.experiment] if place else None
        if plan and rng.random() < plan.lost.get(place.variant, 0.0):
            continue  # this variant's client crashed before asking for a feed
        headers = token(live, user)
        follows = rng.sample(categories, 2)
        live.call(
            "PUT",
            f"/v1/users/{user}/categories",
            headers=headers,
            json_body={"categories": follows},
        )
        page = live.call("GET", f"/v1/users/{user}/feed?limit={PAGE}", headers=headers).body
        if page["experiment"] is None:
            continue
        served[page["experiment"]] = served.get(page["experiment"], 0) + 1
        rate = by_name[page["experiment"]].click_rates[page["variant"]]
        events = []
        for position, item in enumerate(page["items"]):
            seen = {
                "user_id": user,
                "article_id": item["id"],
                "feed_id": page["feed_id"],
                "position": position,
            }
            events.append({"type": "impression", **seen})
            if rng.random() < rate:
                events.append({"type": "click", **seen})
        reply = live.call("POST", "/v1/events", headers=headers, json_body={"events": events})
        assert reply.status == 202, reply.body
    return served


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp_path = tmp_path_factory.mktemp("console")
    with (
        feed_server() as feeds,
        serve(
            tmp_path,
            None,
            args=["--demo"],
            workers=1,
            NEWSFEED_FETCH_ALLOW=feeds.netloc,
            # Sources are polled only when a test says so: their state is the test's.
            NEWSFEED_SOURCE_POLL_SECONDS="0",
        ) as live,
    ):
        live.wait_ready(timeout=120)
        site = Console(f"http://127.0.0.1:{live.port}", live, token(live), feeds)
        set_up_sources(site)
        set_up_experiments(site)
        yield site


def set_up_sources(site: Console) -> None:
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
    good = site.feeds.serve("/local.xml", RSS.format(date=date))
    broken = site.feeds.serve("/broken.xml", b"", status=500)
    quiet = site.feeds.serve("/quiet.xml", RSS.format(date=date))
    for url, enabled in ((good, True), (broken, True), (quiet, False)):
        body = {
            "url": url,
            "categories": ["tech"],
            "enabled": enabled,
            "poll_interval_seconds": 900,
        }
        source = site.api("POST", "/v1/sources", body)
        if enabled:
            site.api("POST", f"/v1/sources/{source['id']}/poll")


def set_up_experiments(site: Console) -> None:
    old = {**AB.definition, "name": "last-week-mmr", "namespace": [0.45, 0.5]}
    site.api("POST", "/v1/experiments", old)
    site.api("POST", "/v1/experiments/last-week-mmr/start")
    site.api("POST", "/v1/experiments/last-week-mmr/stop")
    draft = {**SRM.definition, "name": "popular-next", "namespace": [0.0, 1.0]}
    site.api("POST", "/v1/experiments", draft)
    for plan in (AB, SRM):
        site.api("POST", "/v1/experiments", plan.definition)
        site.api("POST", f"/v1/experiments/{plan.definition['name']}/start")
    served = simulate(site.live, [AB, SRM], READERS)
    assert served.get("fresh-vs-tfidf", 0) > 100 and served.get("popular-srm", 0) > 80, served
    # The events are counted as they are recorded; wait until both experiments have clicks.
    for plan in (AB, SRM):
        results = site.api("GET", f"/v1/experiments/{plan.definition['name']}/results")
        assert all(v["clicks"] > 0 for v in results["variants"]), results


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[Any]:
    browser = chromium(tmp_path / "chromium", DESKTOP, "--hide-scrollbars", console_log=True)
    try:
        yield browser
        assert_no_console_errors(browser)
    finally:
        browser.quit()


def assert_no_console_errors(driver: Any, *expected: str) -> None:
    """No browser console error since the last look, except ones naming an ``expected`` text
    (a response the test provoked on purpose)."""
    errors = [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in expected)
    ]
    assert not errors, errors


def wait(driver: Any, condition: Any) -> Any:
    return WebDriverWait(driver, WAIT).until(condition)


def screenshot(driver: Any, name: str, *, ready: Any = None) -> None:
    """The whole page at desktop and at phone width (a phone's viewport, emulated), as
    var/screenshots/<name>-<desktop|phone>.png; at phone width nothing may stick out sideways."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        for label, (width, height), mobile in (("desktop", DESKTOP, False), ("phone", PHONE, True)):
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
            )
            if ready is not None:
                wait(driver, ready)
            time.sleep(0.3)  # charts redraw when their box changes size
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            assert overflow <= 0, f"{name} sticks out {overflow}px sideways at {width}px"
            # The whole page as one tall viewport, laid out (and charts redrawn) before the shot.
            tall = driver.execute_script("return document.documentElement.scrollHeight")
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": width,
                    "height": min(max(tall, height), MAX_SCREENSHOT_HEIGHT),
                    "deviceScaleFactor": 1,
                    "mobile": mobile,
                },
            )
            time.sleep(0.5)
            shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
            (SCREENSHOTS / f"{name}-{label}.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def text(driver: Any, selector: str) -> str:
    return driver.find_element("css selector", selector).text


def rows(driver: Any, table: str) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')].map("
        "r => [...r.cells].map(c => c.innerText))",
        table,
    )


def open_console(driver: Any, site: Console, fragment: str = "experiments") -> None:
    driver.get(f"{site.base}/console#{fragment}")
    wait(driver, lambda d: not d.find_element("id", "tabs").get_attribute("hidden"))


def chart_data(driver: Any, canvas: str) -> list[list[Any]]:
    return driver.execute_script(
        "return Chart.getChart(arguments[0]).data.datasets.map(d => d.data)", canvas
    )


def test_the_experiments_list_shows_every_experiment_with_its_status(driver, console) -> None:
    open_console(driver, console)
    wait(driver, lambda d: len(rows(d, "#experiments-table")) == 4)
    statuses = {r[0]: r[1] for r in rows(driver, "#experiments-table")}
    assert statuses == {
        "fresh-vs-tfidf": "running",
        "popular-srm": "running",
        "popular-next": "draft",
        "last-week-mmr": "stopped",
    }
    assert "Signed in as demo-admin (admin)" in text(driver, "#who")
    screenshot(driver, "console-experiments")


def test_results_show_ctr_and_lift_with_intervals_exposures_and_no_srm(driver, console) -> None:
    name = AB.definition["name"]
    api = console.api("GET", f"/v1/experiments/{name}/results")
    series = console.api("GET", f"/v1/experiments/{name}/exposures")
    open_console(driver, console, f"experiments/{name}")
    wait(driver, lambda d: len(rows(d, "#results-table")) == 2)
    assert driver.switch_to.active_element.get_attribute("id") == "results-heading"
    assert not driver.find_element("id", "srm-alert").is_displayed()
    assert "Sample-ratio check passed" in text(driver, "#results-summary")

    # The charts plot the API's numbers (in percent), not numbers of the browser's own.
    intervals, estimates = chart_data(driver, "ctr-chart")
    for variant, ci, ctr in zip(api["variants"], intervals, estimates, strict=True):
        assert ctr == pytest.approx(variant["ctr"] * 100)
        assert ci == pytest.approx(
            [variant["ctr_ci"]["low"] * 100, variant["ctr_ci"]["high"] * 100]
        )
    treatment = api["variants"][1]
    lift_ci, lift = chart_data(driver, "lift-chart")
    assert lift == [pytest.approx(treatment["relative_lift"] * 100)]
    assert lift_ci[0] == pytest.approx(
        [treatment["relative_lift_ci"]["low"] * 100, treatment["relative_lift_ci"]["high"] * 100]
    )
    table = {r[0].split(" ")[0]: r for r in rows(driver, "#results-table")}
    assert table["fresh"][3] == str(treatment["users"])
    assert f"{treatment['ctr'] * 100:.2f}%" in table["fresh"][7]
    p = treatment["p_value"]
    assert (f"{p:.3f}" if p >= 0.001 else "< 0.001") in table["fresh"][9]

    # Exposures over time: each variant's users per bucket, as the API counted them.
    exposures = chart_data(driver, "exposure-chart")
    assert exposures == [v["users"] for v in series["variants"]]
    assert sum(exposures[1]) == treatment["users"]
    screenshot(driver, "console-results", ready=lambda d: len(rows(d, "#results-table")) == 2)

    # Pages per day, from the keyboard: the selects are labelled form controls.
    driver.find_element("id", "exposure-measure").send_keys("pages")
    driver.find_element("id", "exposure-interval").send_keys("day")
    daily = console.api("GET", f"/v1/experiments/{name}/exposures?interval=day")
    wait(
        driver, lambda d: chart_data(d, "exposure-chart") == [v["pages"] for v in daily["variants"]]
    )


def test_a_sample_ratio_mismatch_is_a_red_warning(driver, console) -> None:
    name = SRM.definition["name"]
    api = console.api("GET", f"/v1/experiments/{name}/results")
    assert api["srm"]["mismatch"], api["srm"]
    open_console(driver, console, f"experiments/{name}")
    alert = wait(
        driver,
        lambda d: (
            d.find_element("id", "srm-alert").is_displayed() and d.find_element("id", "srm-alert")
        ),
    )
    assert alert.get_attribute("role") == "alert"
    assert "Sample ratio mismatch" in alert.text and "do not trust these results" in alert.text
    red, green, blue = (int(c) for c in alert.value_of_css_property("color")[5:-1].split(",")[:3])
    assert red > 140 and green < 60 and blue < 60, "the warning is red"
    screenshot(
        driver, "console-srm", ready=lambda d: d.find_element("id", "srm-alert").is_displayed()
    )


def test_create_start_and_stop_an_experiment_from_the_form_by_keyboard(driver, console) -> None:
    open_console(driver, console)
    wait(driver, lambda d: len(d.find_elements("css selector", "#variant-list .variant")) == 2)
    name_field = driver.find_element("id", "exp-name")
    name_field.send_keys("console-made")
    start_field = driver.find_element("id", "exp-ns-start")
    start_field.clear()
    start_field.send_keys(FREE_NAMESPACE[0])
    end_field = driver.find_element("id", "exp-ns-end")
    end_field.clear()
    end_field.send_keys(FREE_NAMESPACE[1])
    params = driver.find_element(
        "css selector", "#variant-list .variant:nth-child(2) [data-field=params]"
    )
    params.send_keys("mmr_lambda=0.6")
    params.send_keys(Keys.ENTER)  # submits the form
    wait(driver, lambda d: "console-made" in [r[0] for r in rows(d, "#experiments-table")])
    created = console.api("GET", "/v1/experiments/console-made")
    assert created["status"] == "draft" and created["namespace"] == [0.45, 0.5]
    assert [(v["name"], v["ranker"], v["params"]) for v in created["variants"]] == [
        ("control", "tfidf", {}),
        ("treatment", "latest", {"mmr_lambda": 0.6}),
    ]

    # The same name again: the API's 409 shows in the form's alert.
    name_field.send_keys("console-made")
    name_field.send_keys(Keys.ENTER)
    wait(driver, lambda d: "already exists" in text(d, "#experiment-form-status"))
    assert_no_console_errors(driver, "/v1/experiments - Failed to load resource")

    start = driver.find_element("css selector", 'button[aria-label="Start console-made"]')
    start.send_keys(Keys.ENTER)
    wait(
        driver,
        lambda d: {r[0]: r[1] for r in rows(d, "#experiments-table")}["console-made"] == "running",
    )
    stop = driver.find_element("css selector", 'button[aria-label="Stop console-made"]')
    stop.send_keys(Keys.ENTER)
    wait(
        driver,
        lambda d: (
            "Confirm stop"
            in d.find_element("css selector", 'button[aria-label="Stop console-made"]').text
        ),
    )
    assert console.api("GET", "/v1/experiments/console-made")["status"] == "running"
    driver.find_element("css selector", 'button[aria-label="Stop console-made"]').send_keys(
        Keys.ENTER
    )
    wait(
        driver,
        lambda d: {r[0]: r[1] for r in rows(d, "#experiments-table")}["console-made"] == "stopped",
    )
    assert console.api("GET", "/v1/experiments/console-made")["status"] == "stopped"


def test_sources_show_poll_state_and_poll_now_and_disable_work(driver, console) -> None:
    sources = {s["url"].rsplit("/", 1)[1]: s for s in console.api("GET", "/v1/sources")["sources"]}
    open_console(driver, console, "sources")
    wait(driver, lambda d: len(rows(d, "#sources-table")) == 3)
    table = {r[0].split("\n")[0].rsplit("/", 1)[1]: r for r in rows(driver, "#sources-table")}
    assert table["local.xml"][1] == "ok" and table["local.xml"][3] == "0"
    assert table["broken.xml"][1] == "error" and table["broken.xml"][3] == "1"
    assert table["broken.xml"][5] == sources["broken.xml"]["state"]["last_error"]
    assert table["quiet.xml"][1] == "disabled" and table["quiet.xml"][4] == "not polled"
    screenshot(driver, "console-sources", ready=lambda d: len(rows(d, "#sources-table")) == 3)

    good = sources["local.xml"]["url"]
    driver.find_element("css selector", f'button[aria-label="Poll {good} now"]').click()
    wait(driver, lambda d: f"Polled {good}: not_modified" in text(d, "#sources-status"))
    quiet = sources["quiet.xml"]
    driver.find_element("css selector", f'button[aria-label="Enable {quiet["url"]}"]').click()
    wait(
        driver,
        lambda d: d.find_elements("css selector", f'button[aria-label="Disable {quiet["url"]}"]'),
    )
    assert console.api("GET", f"/v1/sources/{quiet['id']}")["enabled"] is True
    driver.find_element("css selector", f'button[aria-label="Disable {quiet["url"]}"]').click()
    wait(
        driver,
        lambda d: d.find_elements("css selector", f'button[aria-label="Enable {quiet["url"]}"]'),
    )
    assert console.api("GET", f"/v1/sources/{quiet['id']}")["enabled"] is False


def test_model_and_jobs_show_the_model_and_reindex_now_queues_a_fit(driver, console) -> None:
    model = console.api("GET", "/v1/model")
    open_console(driver, console, "system")
    wait(driver, lambda d: d.find_elements("css selector", "#model dd"))
    facts = dict(
        zip(
            [e.text for e in driver.find_elements("css selector", "#model dt")],
            [e.text for e in driver.find_elements("css selector", "#model dd")],
            strict=True,
        )
    )
    assert facts["Version"] == str(model["model_version"])
    assert facts["Articles"].startswith(f"{model['model_articles']:,} in the model")
    assert facts["Who fits"] == "a worker (queue mode)"
    counts = dict(
        zip(
            [e.text for e in driver.find_elements("css selector", "#job-counts dt")],
            [e.text for e in driver.find_elements("css selector", "#job-counts dd")],
            strict=True,
        )
    )
    assert int(counts["Workers"]) >= 1
    screenshot(
        driver, "console-system", ready=lambda d: d.find_elements("css selector", "#model dd")
    )

    driver.find_element("id", "reindex").click()
    wait(driver, lambda d: "Reindex queued as job" in text(d, "#system-status"))
    deadline = time.monotonic() + 120
    while console.api("GET", "/v1/model")["model_version"] == model["model_version"]:
        assert time.monotonic() < deadline, "the worker never published the requested model"
        time.sleep(0.2)


def test_the_feed_inspector_explains_a_readers_page_under_two_rankers(driver, console) -> None:
    # A simulated reader served by tfidf who clicked: their reading is one of the parts.
    def served_by_tfidf(n: int) -> tuple[str, dict[str, Any], dict[str, Any]] | None:
        user = f"sim-{n}"
        profile = console.api("GET", f"/v1/users/{user}/profile")
        if not profile["reads_total"]:
            return None
        page = console.api("GET", f"/v1/users/{user}/feed?explain=true&limit=10")
        return (user, profile, page) if page["ranker"] == "tfidf" else None

    reader, profile, served = next(
        found for found in map(served_by_tfidf, range(READERS)) if found is not None
    )
    assert any(
        part["name"] == "history" and part["value"] > 0
        for item in served["items"]
        for part in item["explain"]["parts"]
    )
    latest = console.api("GET", f"/v1/users/{reader}/feed?explain=true&limit=10&ranker=latest")
    before = console.api("GET", f"/v1/experiments/{served['experiment']}/results")

    open_console(driver, console, "inspector")
    field = wait(
        driver,
        lambda d: (
            d.find_element("id", "inspect-user").is_displayed()
            and d.find_elements("css selector", "#inspect-right option[value=latest]")
            and d.find_element("id", "inspect-user")
        ),
    )
    field.click()
    field.send_keys(reader)
    driver.find_element("id", "inspect-right").send_keys("latest")  # type-ahead, as a keyboard
    field.send_keys(Keys.ENTER)
    wait(driver, lambda d: len(d.find_elements("css selector", "#right-items li.item")) == 10)
    assert driver.find_element("id", "inspect-right").get_attribute("value") == "latest"
    assert driver.current_url.endswith(f"#inspector/{reader}")

    facts = dict(
        zip(
            [e.text for e in driver.find_elements("css selector", "#reader-facts dt")],
            [e.text for e in driver.find_elements("css selector", "#reader-facts dd")],
            strict=True,
        )
    )
    assert facts["Follows"] == ", ".join(profile["categories"])
    reads = driver.find_elements("css selector", "#reader-reads li")
    assert reads[0].text.startswith(profile["reads"][0]["title"])
    for side, page in (("left", served), ("right", latest)):
        titles = [e.text for e in driver.find_elements("css selector", f"#{side}-items .title")]
        assert titles == [item["title"] for item in page["items"]]
        reasons = [e.text for e in driver.find_elements("css selector", f"#{side}-items .reason")]
        assert reasons == [item["reason"] for item in page["items"]]
        first = rows(driver, f"#{side}-items li.item:first-child table.parts")
        assert [cells[1] for cells in first] == [
            f"{part['value']:.4f}" for part in page["items"][0]["explain"]["parts"]
        ]
    assert f"experiment {served['experiment']}" in text(driver, "#left-meta")
    assert text(driver, "#right-heading") == "Ranker latest"
    screenshot(
        driver,
        "console-inspector",
        ready=lambda d: len(d.find_elements("css selector", "#left-items li.item")) == 10,
    )
    # Inspecting served the reader nothing: their experiment counted no page for it.
    after = console.api("GET", f"/v1/experiments/{served['experiment']}/results")
    assert [v["pages"] for v in after["variants"]] == [v["pages"] for v in before["variants"]]


def test_the_console_asks_for_a_token_and_refuses_a_readers(driver, console) -> None:
    open_console(driver, console)
    driver.find_element("id", "sign-out").click()
    field = wait(
        driver,
        lambda d: (
            d.find_element("id", "token-input").is_displayed()
            and d.find_element("id", "token-input")
        ),
    )
    assert driver.switch_to.active_element == field
    assert driver.find_element("id", "tabs").get_attribute("hidden") is not None
    reader = token(console.live, "someone")["Authorization"].split(" ")[1]
    field.send_keys(reader, Keys.ENTER)
    assert "no admin claim" in text(driver, "#token-error")
    admin = console.admin["Authorization"].split(" ")[1]
    field.clear()
    field.send_keys(admin, Keys.ENTER)
    wait(driver, lambda d: len(rows(d, "#experiments-table")) >= 4)


def test_a_reader_token_gets_403_from_the_live_console_endpoints(console) -> None:
    reader = token(console.live, "curious-reader")
    for method, path in (
        ("GET", "/v1/experiments"),
        ("GET", f"/v1/experiments/{AB.definition['name']}/results"),
        ("GET", f"/v1/experiments/{AB.definition['name']}/exposures"),
        ("GET", "/v1/rankers"),
        ("GET", "/v1/sources"),
        ("GET", "/v1/model"),
        ("GET", "/v1/jobs"),
        ("POST", "/v1/jobs/reindex"),
        ("GET", "/v1/users/curious-reader/profile"),
        ("GET", "/v1/users/curious-reader/feed?explain=true"),
    ):
        reply = console.live.call(method, path, headers=reader)
        assert reply.status == 403 and reply.body["error"]["code"] == "forbidden", (
            path,
            reply.body,
        )


def test_the_api_reference_renders_offline_under_its_policy(driver, console) -> None:
    spec = console.live.call("GET", "/openapi.json").body
    operations = sum(len(set(item) - {"parameters"}) for item in spec["paths"].values())
    driver.get(f"{console.base}/docs")
    wait(driver, lambda d: len(d.find_elements("css selector", ".opblock")) == operations)
    screenshot(driver, "docs", ready=lambda d: d.find_elements("css selector", ".opblock"))

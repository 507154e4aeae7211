"""
Headless Chromium for the browser tests.

The browser and its driver are Debian's (``apt-get install chromium
chromium-driver``), named by path. Nothing is downloaded at run time:
Selenium Manager, which would fetch a driver or a browser it cannot find,
never runs.
"""

import json
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.wait import WebDriverWait

from tests.conftest import PASSWORD, LiveServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-default-apps",
    "--window-size=1280,1000",
)

# SEVERE console lines that are not the page's fault: Chromium reports a
# socket that the server refused or dropped (the page then retries on its
# own).
EXPECTED_CONSOLE_NOISE = ("WebSocket connection to",)

WAIT_SECONDS = 5.0


@dataclass
class Browser:
    """One Chromium with a cookie jar of its own, pointed at one server."""

    name: str
    driver: webdriver.Chrome
    server: LiveServer
    console: list[dict[str, object]] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)

    def wait(self, seconds: float = WAIT_SECONDS) -> WebDriverWait[webdriver.Chrome]:
        return WebDriverWait(self.driver, seconds, poll_frequency=0.05)

    def open(self, path: str) -> None:
        self.driver.get(self.server.url + path)

    def sign_in(self, username: str) -> None:
        """Sign in through the login form and wait for the live dashboard."""
        self.open("/accounts/login/")
        self.driver.find_element(By.ID, "id_username").send_keys(username)
        self.driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
        self.driver.find_element(By.ID, "sign-in").click()
        self.wait().until(ec.url_to_be(self.server.url + "/"))
        self.wait_live()

    def wait_live(self) -> None:
        self.wait().until(
            ec.text_to_be_present_in_element((By.ID, "ws-status"), "Live")
        )

    def status(self) -> WebElement:
        return self.driver.find_element(By.ID, "ws-status")

    def chat_lines(self) -> list[str]:
        # Read in one script call: the list is re-rendered when history
        # arrives, and element handles taken before that go stale.
        lines = self.driver.execute_script(
            "return [...document.querySelectorAll('#chat-messages li')]"
            ".map((item) => item.textContent);"
        )
        return [str(line) for line in lines]

    def wait_for_chat(self, body: str) -> None:
        self.wait().until(
            lambda _: any(line.endswith(body) for line in self.chat_lines()),
            f"{self.name} never saw the chat message {body!r}",
        )

    def say(self, body: str) -> None:
        self.driver.find_element(By.ID, "chat-input").send_keys(body)
        self.driver.find_element(By.ID, "chat-send").click()

    def collect_console(self) -> None:
        # Chromium hands each log entry out once; keep them all.
        self.console.extend(self.driver.get_log("browser"))

    def requests_to(self, path: str) -> int:
        """Count the HTTP requests any tab of this browser made to ``path``."""
        # The DevTools network log, unlike the page's resource timing, also
        # records requests whose response body the page never reads.
        for entry in self.driver.get_log("performance"):
            event = json.loads(entry["message"])["message"]
            if event["method"] == "Network.requestWillBeSent":
                self.requested.append(event["params"]["request"]["url"])
        return self.requested.count(self.server.url + path)

    def javascript_errors(self) -> list[str]:
        self.collect_console()
        return [
            str(entry["message"])
            for entry in self.console
            if entry["level"] == "SEVERE"
            and not any(
                noise in str(entry["message"]) for noise in EXPECTED_CONSOLE_NOISE
            )
        ]


def _chromium_options(profile: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    return options


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def open_browser(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[[str, LiveServer], Browser]]:
    """
    Start headless Chromium instances on demand, each with a fresh profile.

    Fail (not skip) when Chromium or its driver is missing: CI installs them,
    so their absence is a broken machine. On teardown, fail the test if any
    page logged a JavaScript error, and keep a screenshot of every browser
    under the test's tmp_path when the test failed.
    """
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.is_file()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not found: install chromium and "
            "chromium-driver (apt-get install chromium chromium-driver)."
        )

    # Service(executable_path=...) already keeps Selenium from running
    # Selenium Manager. Should a later Selenium call it anyway, these make
    # it fail loudly, offline, instead of downloading a browser or driver.
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_MANAGER_PATH", str(tmp_path / "no-selenium-manager"))

    browsers: list[Browser] = []

    def open_(name: str, server: LiveServer) -> Browser:
        profile = tmp_path / f"chromium-{name}"
        profile.mkdir()
        driver = webdriver.Chrome(
            options=_chromium_options(profile),
            service=Service(executable_path=str(CHROMEDRIVER)),
        )
        browser = Browser(name=name, driver=driver, server=server)
        browsers.append(browser)
        return browser

    yield open_

    errors: dict[str, list[str]] = {}
    try:
        for browser in browsers:
            if request.node.stash.get(_CALL_FAILED, False):
                path = tmp_path / f"{browser.name}.png"
                browser.driver.save_screenshot(str(path))
                print(f"screenshot of {browser.name}: {path}")
            if found := browser.javascript_errors():
                errors[browser.name] = found
    finally:
        for browser in browsers:
            browser.driver.quit()
    if errors:
        pytest.fail(f"JavaScript errors in the browser console: {errors}")

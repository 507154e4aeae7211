"""
The dashboard in real browsers against one daphne process: the page signs
in through the login form, opens its socket with a fetched token, and
shows what other people in the tenant do as they do it.
"""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec

from realtime.services import DEMO_CARDS, DEMO_COLUMNS
from tests.conftest import PASSWORD, LiveServer, LiveSite
from tests.e2e.conftest import WAIT_SECONDS, Browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OpenBrowser = Callable[[str, LiveServer], Browser]


@pytest.fixture
def server(live_site: LiveSite) -> LiveServer:
    return live_site.start_server()


def holds_for(seconds: float, condition: Callable[[], bool]) -> bool:
    """Poll ``condition`` for ``seconds``; False as soon as it fails once."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.05)
    return True


def test_dashboard_shows_the_tenants_board(
    server: LiveServer, open_browser: OpenBrowser, tmp_path: Path
) -> None:
    alice = open_browser("alice", server)
    alice.sign_in("alice")
    alice.wait().until(
        ec.presence_of_all_elements_located((By.CSS_SELECTOR, "#board .kcard"))
    )

    columns = alice.driver.find_elements(By.CSS_SELECTOR, "#board .column h3")
    cards = alice.driver.find_elements(By.CSS_SELECTOR, "#board .kcard .title")
    assert [column.text for column in columns] == DEMO_COLUMNS
    assert [card.text for card in cards] == DEMO_CARDS["acme"]
    # Kept for a person reviewing the layout; nothing compares pixels.
    alice.driver.save_screenshot(str(tmp_path / "alice-dashboard.png"))


def test_dashboard_names_an_icon_the_server_serves(
    server: LiveServer, open_browser: OpenBrowser
) -> None:
    alice = open_browser("alice", server)
    alice.sign_in("alice")

    # Without a declared icon Chromium requests /favicon.ico, which 404s and
    # puts an error in the console of every page.
    icon = alice.driver.execute_script(
        "const link = document.querySelector('link[rel~=\"icon\"]');"
        "return link && link.href;"
    )
    assert icon is not None, "base.html declares no <link rel=icon>"
    status = alice.driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then((response) => done(response.status));",
        icon,
    )
    assert status == 200


def test_chat_message_reaches_the_other_person_in_the_tenant_both_ways(
    server: LiveServer, open_browser: OpenBrowser
) -> None:
    alice = open_browser("alice", server)
    bob = open_browser("bob", server)
    alice.sign_in("alice")
    bob.sign_in("bob")

    alice.say("Morning, Bob: standup in five")
    bob.wait_for_chat("Morning, Bob: standup in five")
    bob.say("On my way, Alice")
    alice.wait_for_chat("On my way, Alice")


def test_card_moved_by_one_person_appears_in_the_next_column_for_another(
    server: LiveServer, open_browser: OpenBrowser
) -> None:
    alice = open_browser("alice", server)
    bob = open_browser("bob", server)
    alice.sign_in("alice")
    bob.sign_in("bob")
    first_card = "#board .column:first-child .kcard[data-card-id]"
    for browser in (alice, bob):
        browser.wait().until(
            ec.presence_of_element_located((By.CSS_SELECTOR, first_card))
        )
    columns = bob.driver.find_elements(
        By.CSS_SELECTOR, "#board .column[data-column-id]"
    )
    next_column = columns[1].get_attribute("data-column-id")
    card = bob.driver.find_element(By.CSS_SELECTOR, first_card)
    card_id = card.get_attribute("data-card-id")

    card.find_element(By.CSS_SELECTOR, "button.move-right").click()

    alice.wait().until(
        ec.presence_of_element_located(
            (
                By.CSS_SELECTOR,
                f'.column[data-column-id="{next_column}"] '
                f'.kcard[data-card-id="{card_id}"]',
            )
        ),
        f"alice's board never showed card {card_id} in column {next_column}",
    )


def test_signing_out_in_another_tab_ends_the_dashboard_for_good(
    server: LiveServer, open_browser: OpenBrowser
) -> None:
    alice = open_browser("alice", server)
    alice.sign_in("alice")
    dashboard_tab = alice.driver.current_window_handle
    connects = alice.requests_to("/accounts/ws-token/")
    assert connects == 1, "the network log missed the page's own token request"

    alice.driver.switch_to.new_window("tab")
    alice.open("/accounts/sessions/")
    alice.driver.find_element(By.ID, "sign-out").click()
    alice.wait().until(ec.url_contains("/accounts/login/"))
    alice.driver.switch_to.window(dashboard_tab)

    ended = (By.CSS_SELECTOR, "#ws-status.status.ended a")
    link = alice.wait(WAIT_SECONDS).until(ec.presence_of_element_located(ended))
    assert alice.status().get_attribute("class") == "status ended"
    assert alice.status().text == "Your session has ended. Sign in again"
    assert link.text == "Sign in again"
    assert link.get_attribute("href") == server.url + "/accounts/login/"
    # Every connect starts with a token request, and the first reconnect
    # after a drop comes within half a second: two quiet seconds mean the
    # page has given up.
    assert holds_for(2.0, lambda: alice.requests_to("/accounts/ws-token/") == connects)


def test_changing_the_password_in_another_tab_keeps_the_dashboard_live(
    server: LiveServer, open_browser: OpenBrowser
) -> None:
    alice = open_browser("alice", server)
    alice.sign_in("alice")
    dashboard_tab = alice.driver.current_window_handle
    connects = alice.requests_to("/accounts/ws-token/")

    alice.driver.switch_to.new_window("tab")
    alice.open("/accounts/password/")
    for field, value in (
        ("id_old_password", PASSWORD),
        ("id_new_password1", "a-new-long-passphrase-42"),
        ("id_new_password2", "a-new-long-passphrase-42"),
    ):
        alice.driver.find_element(By.ID, field).send_keys(value)
    alice.driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    alice.wait().until(ec.url_contains("/accounts/sessions/"))
    alice.driver.switch_to.window(dashboard_tab)

    # The socket of the old key closes (4002) and the page reconnects with
    # a token minted for the new key: live again, never "ended".
    alice.wait(WAIT_SECONDS).until(
        lambda _: alice.requests_to("/accounts/ws-token/") > connects
    )
    alice.wait_live()
    assert "ended" not in (alice.status().get_attribute("class") or "")
    alice.say("still here after the password change")
    alice.wait_for_chat("still here after the password change")


def test_another_tenant_never_sees_acme_chat(
    server: LiveServer, open_browser: OpenBrowser
) -> None:
    alice = open_browser("alice", server)
    bob = open_browser("bob", server)
    carol = open_browser("carol", server)
    for browser in (alice, bob, carol):
        browser.sign_in(browser.name)

    alice.say("Acme only: the merger is on")
    bob.wait_for_chat("Acme only: the merger is on")
    # Carol's own message coming back proves her socket delivers chat, so
    # the absence below is not a dead connection.
    carol.say("Globex here")
    carol.wait_for_chat("Globex here")
    assert not any("merger" in line for line in carol.chat_lines())

    carol.driver.refresh()
    carol.wait_live()
    carol.wait_for_chat("Globex here")
    assert not any("merger" in line for line in carol.chat_lines())

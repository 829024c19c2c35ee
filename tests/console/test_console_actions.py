"""The console's other actions in a real Chromium, on one server: the schedule
form's errors beside their fields, Disable/Enable, Preview and its comparison,
Generate PDF/XML for a whole run, Retry parked (refused, then billed once the
rate exists), an admin's rebuild; and the sign-in form's CSRF token."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import httpx

from application.billing.invoicers import assign_invoicer
from application.runs.executor import BillRunExecutor
from application.runs.scheduling import schedule_run
from domain.runs.settings import RunSettings, Selection
from domain.shared.periods import Period
from entrypoints.http.tenancy import Role, StoredKeys
from entrypoints.runtime import open_runtime
from tests.api.conftest import LiveServer
from tests.conftest import account, package
from tests.console.conftest import ACCOUNTS
from tests.console.test_console_browser import execute, schedule, signed_in

JANUARY = Period(date(2026, 1, 1), date(2026, 1, 31))


def test_the_schedule_form_shows_every_error_beside_its_field(
    browser: Any, billed_tenant: LiveServer
) -> None:
    page = signed_in(browser, billed_tenant, Role.OPERATOR)
    page.click("text=Schedule a run")
    page.fill("#f-period_start", "2026-02-01")
    page.fill("#f-period_end", "2026-01-01")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_selector("#e-run_id")
    assert "required" in page.locator("#e-run_id").inner_text()
    assert "before it starts" in page.locator("#e-period_end").inner_text()
    assert page.locator("#f-period_end").get_attribute("aria-invalid") == "true"
    assert page.locator("#f-period_start").input_value() == "2026-02-01"  # kept

    # Disable and enable, preview, execute: the statistics compare the two.
    schedule(page, "2026-01", "2026-01-01", "2026-01-31")
    page.click("#actions button:has-text('Disable')")
    page.wait_for_selector("h1 .badge:has-text('disabled')")
    page.click("#actions button:has-text('Enable')")
    page.wait_for_selector("#actions button:has-text('Disable')")
    assert page.locator("h1 .badge:has-text('disabled')").count() == 0
    page.click("#actions button:has-text('Preview')")
    page.wait_for_selector("#preview-state:has-text('previewed')", timeout=60_000)
    assert f"{ACCOUNTS} invoices" in page.locator("#preview-state").inner_text()
    execute(page)
    assert "equals its preview" in page.locator("#preview-comparison").inner_text()

    # Generate PDF, then XML, for every invoice of the run.
    for button, shown in (("Generate PDF", "PDF"), ("Generate XML", "XML (UBL 2.1)")):
        page.click(f"#actions button:has-text('{button}')")
        done = f"#documents-state:has-text('{shown}: {ACCOUNTS} documents')"
        page.wait_for_selector(done, timeout=120_000)

    # The description is saved through describe_run, as the CLI and the API do.
    page.fill("#description", "January, every account")
    page.click("form[action$='/description'] button[type=submit]")
    page.wait_for_selector("h1 + p:has-text('January, every account')")
    page.context.close()


def test_an_operator_retries_a_parked_account_and_an_admin_rebuilds(
    browser: Any, console_server: LiveServer, authority: StoredKeys
) -> None:
    parked_run(console_server, authority)
    page = signed_in_to(browser, console_server, "globex", Role.OPERATOR)
    page.goto("/console/runs/jan")
    assert "HQ" in page.locator("#parked").inner_text()
    page.click("#actions button:has-text('Retry parked')")
    page.wait_for_load_state()
    assert "CHF" in page.locator("main").inner_text()  # refused: the rate is missing
    with console_server.client("globex") as client:
        rate = {"base": "EUR", "quote": "CHF", "rate": "0.95", "date": "2026-01-01"}
        assert client.post("/v1/exchange-rates", json=rate).status_code == 201
    page.goto("/console/runs/jan")
    page.click("#actions button:has-text('Retry parked')")
    page.wait_for_url(re.compile(r".*/console/runs/jan$"))
    assert page.locator("#parked").count() == 0
    assert page.locator("#invoice-table tbody tr").count() == 2  # A, and HQ's family
    page.context.close()

    admin = signed_in_to(browser, console_server, "globex", Role.ADMIN)
    admin.goto("/console/audit")
    admin.click("tr[data-projection=invoices] button:has-text('Rebuild')")
    # Polled while it runs (a progress bar), then the page reloads with the outcome.
    admin.wait_for_selector("tr[data-projection=invoices] :text('serves reads')", timeout=60_000)
    admin.context.close()


def parked_run(server: LiveServer, authority: StoredKeys) -> None:
    """Tenant globex's run `jan` with HQ parked: BRANCH (CHF) joined HQ's family
    (EUR) after the run had fixed its rates (none), so the family cannot be
    converted (as tests/integration/test_parked_accounts.py sets it up)."""
    with server.client("globex") as client:
        for record in (
            account("A", package("office", "100.00")),
            account("HQ", package("office", "200.00")),
            account("BRANCH", package("desk", "50.00"), currency="CHF"),
        ):
            assert client.post("/v1/accounts", json=record).status_code == 201
    with open_runtime(authority.settings_for("globex")) as runtime:
        billing = runtime.billing
        settings = RunSettings(render_invoices=False, deliver_invoices=False)
        schedule_run(billing, "jan", JANUARY, None, Selection(), settings)
        executor = BillRunExecutor(billing, batch_size=1)
        executor._start(billing.get_run("jan"))
        assign_invoicer(billing, "BRANCH", "HQ")
        executor.execute("jan")


def signed_in_to(browser: Any, server: LiveServer, tenant: str, role: Role) -> Any:
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto("/console/sign-in")
    page.fill("#key", server.keys[tenant, role])
    page.press("#key", "Enter")
    page.wait_for_url(re.compile(r".*/console/runs$"))
    return page


def test_signing_in_needs_the_forms_own_token(console_server: LiveServer) -> None:
    """Login CSRF: a form posted from elsewhere (no token, or another browser's)
    signs nobody in, whatever key it carries."""
    key = console_server.keys["acme", Role.OPERATOR]
    with (
        httpx.Client(base_url=console_server.url) as forger,
        httpx.Client(base_url=console_server.url) as victim,
    ):
        refused = victim.post("/console/sign-in", data={"key": key})
        assert refused.status_code == 403 and "billrun_console=" not in str(refused.headers)
        token = _token(forger.get("/console/sign-in").text)
        crossed = victim.post("/console/sign-in", data={"key": key, "csrf": token})
        assert crossed.status_code == 403  # the token is not this browser's cookie
        own = _token(victim.get("/console/sign-in").text)
        signed = victim.post("/console/sign-in", data={"key": key, "csrf": own})
        assert signed.status_code == 303 and "billrun_console" in victim.cookies
        assert victim.get("/console/runs").status_code == 200


def _token(form: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', form)
    assert found is not None
    return found.group(1)

"""The console in a real Chromium: an operator takes a run from scheduling to
completed; an auditor sees the same pages, finds nothing that writes, and a
write forged from the auditor's session is refused by the server."""

from __future__ import annotations

import re
from typing import Any

from entrypoints.http.tenancy import Role
from tests.api.conftest import LiveServer
from tests.console.conftest import ACCOUNTS


def signed_in(browser: Any, server: LiveServer, role: Role) -> Any:
    context = browser.new_context(base_url=server.url, accept_downloads=True,
                                  viewport={"width": 1280, "height": 900})  # fmt: skip
    page = context.new_page()
    page.goto("/console/runs")
    page.fill("#key", server.keys["acme", role])
    page.press("#key", "Enter")
    page.wait_for_url(re.compile(r".*/console/runs$"))
    return page


def schedule(page: Any, run_id: str, start: str, end: str) -> None:
    page.goto("/console/runs")
    page.click("text=Schedule a run")
    page.fill("#f-run_id", run_id)
    page.fill("#f-period_start", start)
    page.fill("#f-period_end", end)
    page.uncheck("input[name=render_invoices]")
    page.uncheck("input[name=deliver_invoices]")
    page.click("#schedule-form button[type=submit]")
    page.wait_for_url(f"**/console/runs/{run_id}")


def execute(page: Any) -> None:
    page.click("#actions button:has-text('Execute')")
    # The execution report polls while it runs, then the page reloads with the outcome.
    page.wait_for_selector("#workflow-state:has-text('drafts ready')", timeout=60_000)


def test_an_operator_takes_a_run_from_scheduling_to_completed(
    browser: Any, billed_tenant: LiveServer
) -> None:
    page = signed_in(browser, billed_tenant, Role.OPERATOR)
    schedule(page, "2026-01", "2026-01-01", "2026-01-31")
    assert page.locator("#run-status").inner_text() == "scheduled"
    execute(page)
    rows = page.locator("#invoice-table tbody tr")
    assert rows.count() == ACCOUNTS
    assert "bill packages" in page.locator("#steps").inner_text()

    # Quarantine two invoices with a reason.
    page.locator("#invoice-table input[name=invoice]").nth(0).check()
    page.locator("#invoice-table input[name=invoice]").nth(1).check()
    page.select_option("#review-action", "quarantine")
    page.fill("#review-reason", "amounts to confirm with sales")
    page.click("#review-form button[type=submit]")
    page.wait_for_selector("#review-done")
    assert page.locator("#invoice-table td.reason", has_text="amounts to confirm").count() == 2

    # Approve the rest by filter: every draft.
    page.select_option("#inv-status", "draft")
    page.click("#invoices form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*status=draft.*"))
    page.select_option("#review-action", "approve")
    page.select_option("#review-scope", "filter")
    page.click("#review-form button[type=submit]")
    page.wait_for_selector("#review-done:has-text('4 changed')")

    # The quarantined two are rejected (validating refuses while any is held).
    page.goto("/console/runs/2026-01?status=quarantined")
    page.select_option("#review-action", "reject")
    page.select_option("#review-scope", "filter")
    page.fill("#review-reason", "sales confirmed: not owed")
    page.click("#review-form button[type=submit]")
    page.wait_for_selector("#review-done:has-text('2 changed')")
    page.goto("/console/runs/2026-01?status=rejected")
    assert page.locator("#invoice-table td.reason", has_text="not owed").count() == 2

    # Process: drafts ready -> validated -> completed.
    page.click("#actions button:has-text('Process')")
    page.wait_for_selector("#workflow-state:has-text('validated')")
    page.click("#actions button:has-text('Process')")
    page.wait_for_selector("#workflow-state:has-text('completed')")

    # Download an approved invoice's PDF from its page.
    page.goto("/console/runs/2026-01?status=approved")
    page.locator("#invoice-table tbody a").first.click()
    page.wait_for_selector("#timeline")
    assert "InvoiceApproved" in page.locator("#timeline").inner_text()
    with page.expect_download() as download:
        page.click("#documents a:has-text('PDF')")
    path = download.value.path()
    assert path.read_bytes()[:5] == b"%PDF-"

    # Another run, cancelled with "reopen billed items".
    schedule(page, "2026-02", "2026-02-01", "2026-02-28")
    execute(page)
    page.click("text=Cancel run…")
    page.check("input[name=mode][value=reopen]")
    page.fill("#cancel-reason", "wrong period")
    page.click("#cancel-form button[type=submit]")
    page.wait_for_selector("#run-status:has-text('cancelled')")

    # The list shows both, filtered by status.
    page.goto("/console/runs?status=cancelled")
    assert page.locator("#runs tbody tr").count() == 1
    page.context.close()


def test_an_auditor_sees_the_pages_and_cannot_write(
    browser: Any, billed_tenant: LiveServer
) -> None:
    operator = signed_in(browser, billed_tenant, Role.OPERATOR)
    schedule(operator, "2026-01", "2026-01-01", "2026-01-31")
    execute(operator)
    operator.context.close()

    page = signed_in(browser, billed_tenant, Role.AUDITOR)
    invoice_url = None
    for url in ("/console/runs", "/console/runs/2026-01", "/console/audit",
                "/console/accounts/ACME-001"):  # fmt: skip
        page.goto(url)
        assert page.locator("main h1").count() == 1
        # No form that posts, but signing out.
        posting = page.locator("main form[method=post]")
        assert posting.count() == 0, f"{url}: {posting.count()} forms that write"
        if url == "/console/runs/2026-01":
            invoice_url = page.locator("#invoice-table tbody a").first.get_attribute("href")
    assert invoice_url is not None
    page.goto(invoice_url)
    assert page.locator("main form[method=post]").count() == 0

    # A forged write from the auditor's own session, with its CSRF token.
    page.goto("/console/runs")
    csrf = page.evaluate(
        "() => document.querySelector('form[action=\"/console/sign-out\"] input[name=csrf]').value"
    )
    answer = page.request.post(
        "/console/runs/2026-01/review",
        form={"csrf": csrf, "action": "approve", "scope": "filter", "status": "draft"},
    )
    assert answer.status == 403
    page.goto("/console/runs/2026-01?status=approved")
    assert page.locator("#invoice-table input[name=invoice]").count() == 0
    assert "No invoices" in page.locator("#invoice-table").inner_text()
    page.context.close()

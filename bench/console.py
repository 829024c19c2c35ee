"""Console pages with 100,000 invoices in the tenant: each page's load time.

Set-up (not timed): a throwaway database, a tenant with N accounts billed by one
run (bench/fixtures.py: N invoices), the server (`create_app`, as `billrun
serve` builds it) under uvicorn in this process, and an operator's session.
Timed: each page fetched `--runs` times over HTTP as a browser asks for it
(the HTML; its CSS and JS are static files), median and worst. Beside each, two
figures measured in the same run: the target (300 ms) as a ratio, and the
ceiling of serving anything at all: the sign-in page (a template, no data).

    python bench/console.py [--accounts 100000] [--runs 20] [--json] [--screenshots DIR]
"""

from __future__ import annotations

import argparse
import html
import json
import re
import socket
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import uvicorn

from bench.common import log, machine_info, postgres_server, source_revision, throwaway_database
from bench.fixtures import RUN_ID, billed_log
from entrypoints.console import install as install_console
from entrypoints.http.app import create_app
from entrypoints.http.tenancy import Role, StoredKeys
from entrypoints.runtime import open_runtime
from infrastructure.settings import Settings
from infrastructure.tenancy import ControlStore

TARGET_MS = 300.0
LAPTOPS = ((1366, 768), (1024, 768))
"""Laptop screens the run details page is also photographed at (besides 1280 px)."""
TENANT = "bench"


def serve(authority: StoredKeys) -> tuple[uvicorn.Server, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app(authority)
    install_console(app)  # as `billrun serve` does
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return server, f"http://127.0.0.1:{port}"


def sign_in(client: httpx.Client, key: str) -> httpx.Response:
    """Sign in as a browser does: the form's token, then the key with it."""
    form = client.get("/console/sign-in").text
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token is not None, "the sign-in form carries no token"
    return client.post("/console/sign-in", data={"key": key, "csrf": token.group(1)})


def timed(client: httpx.Client, path: str, runs: int) -> dict[str, float]:
    client.get(path).raise_for_status()  # the first read catches views up: not timed
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def pages(client: httpx.Client) -> dict[str, str]:
    """The pages to time, with real ids of this tenant."""
    listed = client.get("/v1/accounts?limit=1").json()["items"]
    account = listed[0]["id"]
    run_page = client.get(f"/console/runs/{RUN_ID}").text
    marker = "/console/invoices/"
    start = run_page.index(marker) + len(marker)
    invoice = run_page[start : run_page.index('"', start)]
    return {
        "bill runs": "/console/runs",
        "run details": f"/console/runs/{RUN_ID}",
        "run invoices, filtered": page_of_drafts(client, 100),
        "invoice": f"/console/invoices/{invoice}",
        "account": f"/console/accounts/{account}",
        "audit": "/console/audit",
    }


def page_of_drafts(client: httpx.Client, wanted: int) -> str:
    """The URL of the run's `wanted`th page of drafts (or its last), reached by
    following each page's Next link as a reader does (pages go by key)."""
    path = f"/console/runs/{RUN_ID}?status=draft"
    for _ in range(wanted - 1):
        found = re.search(r'href="\?([^"]*)#invoices" id="next-page"', client.get(path).text)
        if found is None:
            break
        path = f"/console/runs/{RUN_ID}?" + html.unescape(found.group(1))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--import-chunk", type=int, default=10_000, help="Accounts per import transaction."
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--screenshots", type=Path, help="Also save screenshots of each page here.")
    args = parser.parse_args()
    with postgres_server() as server, throwaway_database(server.url) as url:
        settings = Settings.from_environment(
            {
                "BILLRUN_HOME": str(Path.cwd() / ".billrun"),
                "BILLRUN_SELLER_NAME": "Bench Seller SA",
                "BILLRUN_SELLER_IBAN": "BE71096123456769",
                "BILLRUN_SELLER_EMAIL": "billing@bench.example",
            }
        )
        with ControlStore(url, max_size=1) as control:
            control.create_tenant(TENANT)
            _, admin_key = control.create_key(TENANT, Role.ADMIN, "bench")
            _, service_key = control.create_key(TENANT, Role.SERVICE, "bench")
        authority = StoredKeys(settings, url)
        with open_runtime(authority.settings_for(TENANT)) as runtime:
            billed = billed_log(runtime.billing, args.accounts, import_chunk=args.import_chunk)
        uvicorn_server, base = serve(authority)
        try:
            with httpx.Client(base_url=base, timeout=120) as client:
                signed = sign_in(client, admin_key)
                assert signed.status_code == 303, signed.text
                client.headers["Authorization"] = f"Bearer {service_key}"
                shown = pages(client)
                ceiling = timed(client, "/console/sign-in", args.runs)
                log(f"ceiling (sign-in page): {ceiling['median_ms']} ms")
                results = {}
                for name, path in shown.items():
                    results[name] = {**timed(client, path, args.runs), "path": path}
                    results[name]["ratio_to_target"] = round(
                        results[name]["median_ms"] / TARGET_MS, 3
                    )
                    log(f"{name}: {results[name]}")
            if args.screenshots:
                screenshots(base, admin_key, shown, args.screenshots)
        finally:
            uvicorn_server.should_exit = True
    report: dict[str, Any] = {
        "benchmark": "console pages",
        "invoices": billed.accounts,
        "runs_per_page": args.runs,
        "target_ms": TARGET_MS,
        "ceiling_sign_in_page_ms": ceiling["median_ms"],
        "pages": results,
        "all_under_target": all(r["max_ms"] < TARGET_MS for r in results.values()),
        "machine": machine_info(),
        "source": source_revision(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"console pages with {billed.accounts:,} invoices ({args.runs} runs each)")
    print(f"{'page':26} {'median ms':>10} {'max ms':>8} {'/ 300 ms':>9}")
    for name, row in results.items():
        print(f"{name:26} {row['median_ms']:>10} {row['max_ms']:>8} {row['ratio_to_target']:>9}")
    print(f"{'ceiling: sign-in page':26} {ceiling['median_ms']:>10}")


def screenshots(base: str, key: str, shown: dict[str, str], folder: Path) -> None:
    """A screenshot of each page at 1280 px, and of the run's details on laptop
    screens (Debian's Chromium, as the tests)."""
    from playwright.sync_api import sync_playwright

    from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS

    folder.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(base_url=base, viewport={"width": 1280, "height": 900})
        page.goto("/console/sign-in")
        page.screenshot(path=str(folder / "console-sign-in.png"))
        page.fill("#key", key)
        page.press("#key", "Enter")
        page.wait_for_url("**/console/runs")
        for name, path in shown.items():
            page.goto(path)
            page.wait_for_timeout(300)
            file = "console-" + name.replace(",", "").replace(" ", "-") + ".png"
            page.screenshot(path=str(folder / file), full_page=True)
        for width, height in LAPTOPS:  # the widest page, on laptop screens
            page.set_viewport_size({"width": width, "height": height})
            page.goto(shown["run details"])
            page.wait_for_timeout(300)
            page.screenshot(path=str(folder / f"console-run-details-{width}.png"), full_page=True)
        browser.close()


if __name__ == "__main__":
    main()

"""`billrun serve`: the HTTP API."""

from __future__ import annotations

from typing import Annotated

import typer

from entrypoints import output
from entrypoints.common import VerboseFlag, log_verbosely, refusals
from infrastructure.database import database_url
from infrastructure.settings import Settings


@refusals
def serve(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port to listen on.")] = 8080,
    verbose: VerboseFlag = False,
) -> None:
    """Serve the HTTP API and the console (FastAPI under uvicorn) until SIGINT or SIGTERM.

    Every tenant's book, behind its API keys (`billrun apikey create --tenant T
    --role admin`), under /v1; the OpenAPI document at /openapi.json (also
    docs/openapi.json); the console at /console (sign in with an operator, admin
    or auditor key; docs/console.md). Uses BILLRUN_DATABASE_URL, or the embedded PostgreSQL
    under BILLRUN_HOME, like every command. Stops gracefully: requests in flight
    finish, new connections are refused.

    Example: [bold]billrun serve --port 8080[/bold], then
    [bold]curl -H "Authorization: Bearer $KEY" localhost:8080/v1/accounts[/bold]
    """
    import uvicorn

    from entrypoints.console import install as install_console
    from entrypoints.http.app import create_app
    from entrypoints.http.tenancy import StoredKeys

    log_verbosely(verbose)
    settings = Settings.from_environment()
    with database_url(settings) as url:
        app = create_app(StoredKeys(settings, url))
        install_console(app)  # the operator's console at /console (docs/console.md)
        output.errors.print(
            f"serving the billrun API on http://{host}:{port}/v1 and the console on "
            f"http://{host}:{port}/console; press Ctrl-C to stop",
            highlight=False,
        )
        # uvicorn's own signal handling is the graceful stop: it stops accepting,
        # lets requests in flight finish, then runs the lifespan's shutdown.
        uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="info" if verbose else "warning")
        ).run()

"""Generated documentation: `python -m entrypoints.docs [--check]`.

The import file's JSON Schema is generated from the pydantic models, the
AsyncAPI document from the public event models (`infrastructure.contract`) and
the OpenAPI 3.1 document from the HTTP API's routes (`entrypoints.http`);
`--check` fails when a committed copy is stale, so CI keeps the docs true.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from application.billing.import_document import json_schema
from infrastructure.contract.asyncapi import asyncapi_document


def _import_schema() -> str:
    return json.dumps(json_schema(), indent=2) + "\n"


def _asyncapi() -> str:
    return json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"


def _openapi() -> str:
    from entrypoints.http.app import create_app
    from entrypoints.http.tenancy import NoKeys

    return json.dumps(create_app(NoKeys()).openapi(), indent=2, sort_keys=True) + "\n"


GENERATED = {
    Path("docs/import-schema.json"): _import_schema,
    Path("docs/asyncapi.json"): _asyncapi,
    Path("docs/openapi.json"): _openapi,
}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, render in GENERATED.items():
        content = render()
        if check:
            if not path.exists() or path.read_text() != content:
                stale.append(path)
        else:
            path.write_text(content)
            print(f"wrote {path}")  # noqa: T201
    for path in stale:
        print(f"{path} is stale: run `make docs` and commit it", file=sys.stderr)  # noqa: T201
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

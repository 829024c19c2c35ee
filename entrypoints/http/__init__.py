"""billrun's HTTP API (`billrun serve`): FastAPI under uvicorn, versioned under /v1.

- `app`: the application factory and its lifespan (one open book per tenant);
- `tenancy`: keys, roles and tenants as the API sees them;
- `books`: each tenant's application and read side, opened once and shared;
- `security`: the key on each request and the one table of routes to roles;
- `problems`: RFC 9457 problems from the refusals the CLI reports (one place);
- `idempotency`: Idempotency-Key on every write, committed with its events;
- `pagination`, `limits`, `etags`: the conventions every resource follows;
- `routers/`: one module per bounded context, calling the application services
  the CLI calls and answering with the JSON `--json` prints
  (`entrypoints/representations.py`).
"""

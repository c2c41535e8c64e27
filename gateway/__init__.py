"""The agency gateway: a small HTTP API (FastAPI) for agencies' systems and a public
status lookup for applicants.

Modules, one concern each: `problems` (RFC 9457 errors and their types), `tokens`
(issuing and checking bearer tokens in the store), `auth` (the request's agency),
`idempotency` (first answers per Idempotency-Key), `schemas` (the documented bodies),
`responses` (which problems each endpoint documents), `context` (Temporal and the
store for a request), `dossiers` (Temporal and projection access), `routes_agency` /
`routes_public` (the endpoints), `app` (the factory) and `server` (uvicorn, stoppable
by an event). Figures under load: BENCHMARK.md.
"""

"""API docs that work on an isolated network: Swagger UI from the installed
`fastapi-offline` package, not from a CDN.

FastAPI's own `/docs` page loads its JavaScript, CSS and favicon from cdn.jsdelivr.net
and fastapi.tiangolo.com, so on a network without internet it is blank.
`fastapi-offline` ships the Swagger UI 5 bundle and serves it with Starlette's
StaticFiles; here it is mounted under `/docs/assets`, beside the page, so whatever
routes `/docs` to the gateway routes the assets too. Like `/openapi.json`, the page and
its assets need no token (auth is a dependency of the `/v1` routes only).

No `/redoc`: the ReDoc 2 bundle (shipped by the same package) always draws the
"API docs by Redocly" logo in its side menu as an <img> from cdn.redoc.ly, with no
option to turn it off, so every view of the page would reach for the internet.
Swagger UI shows the same document.

Swagger UI's online validator badge (an image from validator.swagger.io that carries
the spec's URL) is drawn only by its StandaloneLayout, not by the BaseLayout FastAPI's
page uses; `validatorUrl: null` keeps it off whatever the layout.
tests/gateway/test_offline.py renders the page and fetches every asset it names.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

ASSETS_URL = "/docs/assets"
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}


def offline_fastapi(**kwargs: Any) -> FastAPI:
    """`FastAPI(**kwargs)` with `/docs` served from local files and no `/redoc`."""
    return FastAPIOffline(static_url=ASSETS_URL, redoc_url=None, swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
                          **kwargs)

"""The gateway works on a network without internet (agencies sit on an isolated
government network): its docs page loads every asset from the gateway itself, and
nothing it serves names an outside address for a browser to fetch.

Against the real `lienthong dev` stack (stack.py), as a browser would ask: each page,
then every script, stylesheet, icon and spec URL the page references. What the bundled
JavaScript fetches once running is not visible here: gateway/docs_assets.py says what
was checked in a browser (ReDoc's outside logo, Swagger UI's validator badge)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.gateway.stack import Stack

# Any absolute or scheme-relative URL: what a page could fetch from elsewhere.
ABSOLUTE_URL = re.compile(r"""(?:[a-z][a-z0-9+.-]*:)?//[^\s"'<>`)]+""", re.IGNORECASE)
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DOCS_PAGES = ["/docs", "/docs/oauth2-redirect"]
# What each kind of asset must be served as (by its file name's ending).
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
# The spec URL the page loads by script (Swagger UI's `url:`).
SPEC_URL = re.compile(r"""\burl:\s*['"]([^'"]+)['"]""")


class _References(HTMLParser):
    """Every src/href of the page's elements (what a browser fetches or links)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.urls.append((tag, value))


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return [url for _, url in parser.urls] + SPEC_URL.findall(html)


def outside_urls(text: str, own_origin: str) -> list[str]:
    """The absolute URLs in `text` that point neither at loopback nor at `own_origin`.
    XML/SVG namespace names (http://www.w3.org/...) are identifiers, never fetched."""
    own = urlsplit(own_origin).netloc
    found = []
    for match in ABSOLUTE_URL.findall(text):
        parts = urlsplit(match if "://" in match else f"http:{match}")
        if parts.hostname in LOOPBACK_HOSTS or parts.netloc == own:
            continue
        found.append(match)
    return found


@pytest.mark.parametrize("page", DOCS_PAGES)
def test_docs_pages_name_no_outside_url(stack: Stack, page: str) -> None:
    answer = httpx.get(f"{stack.url}{page}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert outside_urls(answer.text, stack.url) == [], answer.text


def test_every_asset_the_docs_page_references_is_served_by_the_gateway(stack: Stack) -> None:
    page = f"{stack.url}/docs"
    urls = references(httpx.get(page).text)
    fetched = set()
    for url in urls:
        absolute = urljoin(page, url)
        assert urlsplit(absolute).netloc == urlsplit(stack.url).netloc, url
        answer = httpx.get(absolute)  # no token: the docs are public, like /openapi.json
        assert answer.status_code == 200 and answer.content, (url, answer.status_code)
        kind = ASSET_TYPES[next(e for e in ASSET_TYPES if urlsplit(absolute).path.endswith(e))]
        assert kind in answer.headers["content-type"], (url, answer.headers["content-type"])
        fetched.add(urlsplit(absolute).path)
    assert fetched == {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css",
                       "/docs/assets/favicon.png", "/openapi.json"}, urls


def test_swagger_ui_asks_no_outside_validator_and_there_is_no_redoc(stack: Stack) -> None:
    # Swagger UI's default validatorUrl (validator.swagger.io) lives in its bundle, not
    # in the page: only the page's configuration shows it is switched off. ReDoc is not
    # served: its bundle always loads a logo from cdn.redoc.ly (gateway/docs_assets.py).
    swagger = httpx.get(f"{stack.url}/docs").text
    assert re.search(r'"validatorUrl":\s*null', swagger), swagger
    assert httpx.get(f"{stack.url}/redoc").status_code == 404


def test_an_unknown_asset_is_a_404_not_a_detour(stack: Stack) -> None:
    answer = httpx.get(f"{stack.url}/docs/assets/no-such-file.js")
    assert answer.status_code == 404


def _strings(value: Any, where: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in _strings(key, where) + _strings(item, f"{where}/{key}")]
    if isinstance(value, list):
        return [s for index, item in enumerate(value) for s in _strings(item, f"{where}/{index}")]
    return [(where, value)] if isinstance(value, str) else []


def test_the_openapi_document_names_no_outside_url(stack: Stack) -> None:
    # Decided: no absolute URL at all, not even a text-only identifier (license URL,
    # externalDocs, a problem `type`): problem types are relative (/problems/...) and
    # served by the gateway, and a reader on the isolated network could not follow an
    # outside link anyway. Swagger UI and ReDoc would resolve an external $ref: none.
    document = httpx.get(f"{stack.url}/openapi.json").json()
    found = [(where, text) for where, text in _strings(document) if outside_urls(text, stack.url)]
    assert found == []
    refs = [text for where, text in _strings(document) if where.endswith("/$ref")]
    assert refs and all(ref.startswith("#/") for ref in refs)
    assert "servers" not in document or all(not urlsplit(s["url"]).netloc for s in document["servers"])
    problems = httpx.get(f"{stack.url}/problems").json()
    assert problems and all(p["type"].startswith("/problems/") for p in problems)
    assert outside_urls(json.dumps(problems, ensure_ascii=False), stack.url) == []

"""The OpenAPI document is built and encoded once, and is FastAPI's own document."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from flowmill.api.docs import install_openapi


async def test_docs_openapi_encoded_once_and_unchanged() -> None:
    app = FastAPI(title="t", docs_url=None, redoc_url=None)

    @app.get("/api/thing")
    async def thing() -> dict[str, int]:
        return {"n": 1}

    install_openapi(app)
    built = app.openapi
    calls: list[int] = []

    def counting() -> dict[str, Any]:
        calls.append(1)
        return built()

    app.openapi = counting  # type: ignore[method-assign]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        first = await client.get("/openapi.json")
        second = await client.get("/openapi.json")
    assert first.status_code == second.status_code == 200
    assert first.headers["content-type"] == "application/json"
    assert first.content == second.content
    assert first.json() == built() and "/api/thing" in first.json()["paths"]
    assert "/openapi.json" not in first.json()["paths"]
    assert len(calls) == 1

"""The reference: a bare Starlette + aiohttp pass-through (no auth, logging or scoring).

``python -m bench.gateway.bare_proxy --port N --upstream http://127.0.0.1:M``
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


def create_app(upstream: str) -> Starlette:
    state: dict[str, aiohttp.ClientSession] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        yield
        await state["s"].close()

    async def proxy(request: Request) -> Response:
        body = await request.body()
        r = await state["s"].post(
            upstream + request.url.path, data=body, headers={"Content-Type": "application/json"}
        )
        if r.content_type == "text/event-stream":

            async def relay() -> AsyncIterator[bytes]:
                try:
                    async for chunk in r.content.iter_any():
                        yield chunk
                finally:
                    r.release()

            return StreamingResponse(relay(), status_code=r.status, media_type=r.content_type)
        data = await r.read()
        r.release()
        return Response(data, status_code=r.status, media_type=r.content_type)

    return Starlette(
        routes=[Route("/v1/chat/completions", proxy, methods=["POST"])], lifespan=lifespan
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True)
    args = parser.parse_args()
    uvicorn.run(
        create_app(args.upstream.rstrip("/")),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()

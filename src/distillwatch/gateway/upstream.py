"""The upstream model server: one aiohttp session per app, and its failures as refusals."""

from __future__ import annotations

import aiohttp
from yarl import URL

from distillwatch.respond.errors import Refusal, bad_gateway, gateway_timeout


class UpstreamError(Exception):
    """The upstream could not be reached or did not answer in time."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class Upstream:
    """POST/GET to ``base`` with the configured timeouts; ``start``/``close`` in the lifespan.

    ``timeout_s`` bounds the wait for the response headers and for each later read, so a
    slow or stalled upstream becomes a 504 (or an error event in a stream), never a hang.
    """

    def __init__(
        self,
        base: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 5.0,
    ) -> None:
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s
        # whole answers: everything within timeout_s; streams: no gap longer than timeout_s
        self.timeout_whole = aiohttp.ClientTimeout(total=timeout_s, connect=connect_timeout_s)
        self.timeout_stream = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout_s, sock_read=timeout_s
        )
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}  # parsed once per path (model endpoints: a handful)

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout_whole)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("upstream session not started (the app lifespan starts it)")
        return self._session

    async def send(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        content_type: str | None = "application/json",
        query: str = "",
        stream: bool = False,
    ) -> aiohttp.ClientResponse:
        """Send a request; the caller reads and ``release()``s the response."""
        headers = dict(self.headers)
        if content_type and body is not None:
            headers["Content-Type"] = content_type
        url = f"{self.base}{path}?{query}" if query else self._urls.get(path) or self._url(path)
        timeout = self.timeout_stream if stream else self.timeout_whole
        try:
            return await self.session.request(
                method, url, data=body, headers=headers, timeout=timeout
            )
        except TimeoutError:
            raise UpstreamError(gateway_timeout(self.timeout_s)) from None
        except aiohttp.ClientError as e:
            raise UpstreamError(
                bad_gateway(f"The upstream model server is unreachable: {type(e).__name__}.")
            ) from None

    def _url(self, path: str) -> URL | str:
        if len(self._urls) >= 256:  # pass-through paths are open-ended: keep the cache small
            return self.base + path
        url = self._urls[path] = URL(self.base + path)
        return url

    async def read(self, response: aiohttp.ClientResponse) -> bytes:
        """The whole body, with the same timeout and error mapping."""
        try:
            return await response.read()
        except TimeoutError:
            raise UpstreamError(gateway_timeout(self.timeout_s)) from None
        except aiohttp.ClientError as e:
            raise UpstreamError(
                bad_gateway(f"The upstream model server failed mid-answer: {type(e).__name__}.")
            ) from None
        finally:
            response.release()

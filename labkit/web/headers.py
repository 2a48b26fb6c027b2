"""Response headers every page of the class web page carries."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADERS = {
    # a URL still holding ?token= is never sent to another site as a Referer; not "no-referrer", which would
    # make the browser send "Origin: null" with the page's own POSTs, refused by access.same_origin
    "Referrer-Policy": "same-origin",
    # no other site frames the reset button under something else
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # a trainee's page and the grid change with every check: never from a cache
    "Cache-Control": "no-store",
}


class SafeHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)

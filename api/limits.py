"""The request body limit (``JOBQ_MAX_BODY_BYTES``): 413 when ``Content-Length`` says too much,
and also when the bytes actually streamed (chunked bodies, lying headers) add up to too much."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jobq.api.errors import error_bytes


class BodyLimit:
    """Read each body up front, counting; answer 413 as soon as it passes ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = None
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared > self.max_bytes:
            await self._too_large(send)
            return
        if not chunked and not declared:
            await self.app(scope, receive, send)  # no body to count
            return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away while sending
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body: Message | None = {"type": "http.request", "body": b"".join(chunks),
                                "more_body": False}

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                message, body = body, None
                return message
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        payload = error_bytes("payload_too_large",
                              f"the request body is larger than {self.max_bytes} bytes")
        await send({
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),  # the rest of the body is never read
            ],
        })
        await send({"type": "http.response.body", "body": payload})

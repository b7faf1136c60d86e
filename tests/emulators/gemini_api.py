"""Emulator of the Gemini API (generateContent, and streamGenerateContent
with alt=sse) for driving the official `google-genai` SDK with no network."""

from __future__ import annotations

import orjson
from aiohttp import web

from tests.emulators.base import Emulator, unit_vector

STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip


class GeminiEmulator(Emulator):
    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/models/{call}", self._call)

    @staticmethod
    def _error(status: int, message: str, headers=None) -> web.Response:
        body = {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}
        return web.json_response(body, status=status, headers=headers)

    async def _embed(self, request: web.Request, model: str) -> web.Response:
        """batchEmbedContents: a deterministic unit vector per request."""
        body = await request.json()
        body["_model"] = model
        self.requests.append(body)
        script = self.next_script()
        if script.status:
            return self._error(script.status, f"Emulated HTTP {script.status}.")
        embeddings = []
        for item in body.get("requests", []):
            text = " ".join(p.get("text", "") for p in item.get("content", {}).get("parts", []))
            size = item.get("outputDimensionality") or (item.get("embedContentConfig") or {}).get(
                "outputDimensionality"
            ) or 768  # fmt: skip
            embeddings.append({"values": unit_vector(text.encode(), size)})
        return web.json_response({"embeddings": embeddings})

    async def _call(self, request: web.Request) -> web.StreamResponse:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if key != self.api_key:
            return self._error(400, "API key not valid. Please pass a valid API key.")
        model, _, method = request.match_info["call"].partition(":")
        if method == "batchEmbedContents":
            return await self._embed(request, model)
        if method not in ("generateContent", "streamGenerateContent"):
            return self._error(404, f"method {method} not found")
        body = await request.json()
        body["_model"] = model
        self.requests.append(body)
        self.headers.append(dict(request.headers))
        script = self.next_script(body)
        await self.prelude(request, script)
        if script.status:
            headers = {"retry-after": script.retry_after} if script.retry_after else None
            return self._error(script.status, f"Emulated HTTP {script.status}.", headers)
        words = script.words()
        prompt_tokens = sum(
            len(str(p.get("text", "")).split()) for c in body.get("contents", []) for p in c.get("parts", [])
        )
        answer_tokens = len(words) + sum(len(a) // 4 + 1 for _, _, a in script.tool_calls)
        usage = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt_tokens + answer_tokens,
        }
        finish = {"stop": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}[script.finish]
        calls = [{"functionCall": {"id": i, "name": n, "args": orjson.loads(a)}} for i, n, a in script.tool_calls]

        def response(parts: list[dict], last: bool) -> dict:
            candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
            if last:
                candidate["finishReason"] = finish
            out = {"candidates": [candidate], "modelVersion": model}
            if last:
                out["usageMetadata"] = usage
            return out

        if method == "generateContent":
            parts = ([{"text": script.text}] if script.text else []) + calls
            return web.json_response(response(parts, True))
        if request.query.get("alt") != "sse":
            return self._error(400, "this emulator streams with alt=sse only")
        pieces = [[{"text": word}] for word in words] + [[call] for call in calls]
        if not pieces:
            pieces = [[]]
        events = [
            b"data: " + orjson.dumps(response(parts, n == len(pieces) - 1)) + b"\r\n\r\n"
            for n, parts in enumerate(pieces)
        ]
        return await self.stream(request, events, script, b'data: {"candidates": [{"content": \r\n\r\n')

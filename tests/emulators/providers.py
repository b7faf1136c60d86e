"""Every provider's API emulator (OpenAI, which Groq speaks too, Anthropic,
Gemini) on an event loop of its own in a thread, so synchronous SDK
clients and the mesh's processes can call them."""

from __future__ import annotations

import asyncio
import threading

from tests.emulators.anthropic_api import AnthropicEmulator
from tests.emulators.base import Script
from tests.emulators.gemini_api import GeminiEmulator
from tests.emulators.openai_api import OpenAIEmulator

REPLY = "The answer comes from the emulated provider."


class ProviderEmulators:
    """The emulators, started and stopped together; `env()` points the mesh at them."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.openai = OpenAIEmulator(Script(text=REPLY))
        self.anthropic = AnthropicEmulator(Script(text=REPLY))
        self.gemini = GeminiEmulator(Script(text=REPLY))
        self.by_provider = {
            "openai": self.openai,
            "groq": self.openai,
            "anthropic": self.anthropic,
            "gemini": self.gemini,
        }

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def start(self) -> None:
        self.thread.start()
        for emulator in (self.openai, self.anthropic, self.gemini):
            self.run(emulator.start())

    def stop(self) -> None:
        for emulator in (self.openai, self.anthropic, self.gemini):
            self.run(emulator.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def env(self) -> dict[str, str]:
        return {
            "OPENAI_API_KEY": self.openai.api_key,
            "OPENAI_BASE_URL": self.openai.base_url,
            "GROQ_API_KEY": self.openai.api_key,
            "GROQ_BASE_URL": self.openai.root_url,
            "ANTHROPIC_API_KEY": self.anthropic.api_key,
            "ANTHROPIC_BASE_URL": self.anthropic.root_url,
            "GEMINI_API_KEY": self.gemini.api_key,
            "GEMINI_BASE_URL": self.gemini.root_url,
        }

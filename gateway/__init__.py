"""OpenAI-compatible REST front (ASGI) over the router's gRPC stream."""

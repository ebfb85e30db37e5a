"""The HTTP front: an OpenAI-compatible API on starlette and uvicorn."""

__all__: list[str] = []

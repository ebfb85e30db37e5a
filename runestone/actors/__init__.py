"""The actors of the gateway: provider factory, provider actors, router, pool, stream tasks."""

__all__: list[str] = []

"""The HTTP front: OpenAI's and Anthropic's APIs on starlette and uvicorn, one event loop.

::

    from runestone.server import create_app, serve
    serve(load_config(BUNDLED_CONFIG))              # what `runestone serve` runs
    app = create_app(config)                        # an ASGI app, for another ASGI server

The server's loop is the data plane (ARCHITECTURE §2): an upstream chunk is
parsed and written to the client on it, never crossing a thread.
"""

from runestone.server.app import Gateway, GatewayApp, create_app
from runestone.server.catalog import ModelCatalog
from runestone.server.errors import ApiError
from runestone.server.limits import KeyLimits, SlidingWindow
from runestone.server.reload import ConfigReloader, ReloadOutcome, Revision
from runestone.server.runner import serve

__all__ = [
    "ApiError",
    "ConfigReloader",
    "Gateway",
    "GatewayApp",
    "KeyLimits",
    "ModelCatalog",
    "ReloadOutcome",
    "Revision",
    "SlidingWindow",
    "create_app",
    "serve",
]

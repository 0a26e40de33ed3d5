"""JSON-RPC 2.0 as a spyne protocol (work in progress: names are final)."""

from spyne.protocol.json import JsonDocument
from spyne.server.wsgi import WsgiApplication


class JsonRpc20(JsonDocument):
    """Placeholder; being written."""


class JsonRpcApplication(WsgiApplication):
    """Placeholder; being written."""

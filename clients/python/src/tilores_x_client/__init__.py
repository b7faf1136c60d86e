"""A typed asyncio client for the Tilores X Mesh's gRPC API; the generated
stubs are `tilores_x.v1`. See docs/clients.md in the mesh's repository."""

from tilores_x_client.chat import ChatResult, ChatStream, ToolCall, Usage
from tilores_x_client.client import CustomerCredit, MeshClient
from tilores_x_client.credentials import CredentialsError, MeshCredentials
from tilores_x_client.errors import (
    DeadlineExceeded,
    InvalidArgument,
    MeshError,
    NotAllowed,
    NotFound,
    RateLimited,
    Unavailable,
)
from tilores_x_client.retry import RetryPolicy

__all__ = [
    "ChatResult",
    "ChatStream",
    "CredentialsError",
    "CustomerCredit",
    "DeadlineExceeded",
    "InvalidArgument",
    "MeshClient",
    "MeshCredentials",
    "MeshError",
    "NotAllowed",
    "NotFound",
    "RateLimited",
    "RetryPolicy",
    "ToolCall",
    "Unavailable",
    "Usage",
]

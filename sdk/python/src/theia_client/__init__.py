"""A Python client for theia.

The messages and stubs are generated from theia's `proto/` (see
`generate.py`) into `theia_client.v1`. This module adds the little a caller
should not have to write: a connection that handles TLS and the bearer
token, and errors as Python exceptions that keep the gRPC code and message.

    import theia_client
    from theia_client.v1 import tenant_pb2

    token = open(os.path.expanduser("~/.config/theia/token")).read().strip()
    theia = theia_client.connect("127.0.0.1:7070", token=token)
    theia.tenants.CreateTenant(tenant_pb2.CreateTenantRequest(
        tenant=tenant_pb2.Tenant(name="acme", quota={"compute.vcpu": "8"})))
"""

from __future__ import annotations

from typing import Optional, Union

import grpc

from theia_client.errors import TheiaError, from_rpc_error
from theia_client.v1 import (
    access_pb2_grpc,
    claim_pb2_grpc,
    cluster_pb2_grpc,
    infrastructure_pb2_grpc,
    profile_pb2_grpc,
    tenant_pb2_grpc,
)

__all__ = ["Client", "TheiaError", "connect"]


class _Service:
    """A generated stub whose calls raise TheiaError instead of grpc.RpcError."""

    def __init__(self, stub, timeout: Optional[float]):
        self._stub = stub
        self._timeout = timeout

    def __getattr__(self, name: str):
        method = getattr(self._stub, name)

        def call(request, **kwargs):
            kwargs.setdefault("timeout", self._timeout)
            try:
                return method(request, **kwargs)
            except grpc.RpcError as error:
                raise from_rpc_error(error) from None

        call.__name__ = name
        return call


class _Bearer(grpc.UnaryUnaryClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call."""

    def __init__(self, token: str):
        self._metadata = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation, details, request):
        metadata = list(details.metadata or []) + [self._metadata]
        return continuation(_Details(details, metadata), request)


class _Details(grpc.ClientCallDetails):
    """The details of a call, with extra metadata."""

    def __init__(self, base, metadata):
        self.method = base.method
        self.timeout = base.timeout
        self.metadata = metadata
        self.credentials = base.credentials
        self.wait_for_ready = getattr(base, "wait_for_ready", None)
        self.compression = getattr(base, "compression", None)


class Client:
    """One channel to a manager and a client for each service on it."""

    def __init__(self, channel: grpc.Channel, timeout: Optional[float] = 30.0):
        self.channel = channel
        self.tenants = _Service(tenant_pb2_grpc.TenantServiceStub(channel), timeout)
        self.profiles = _Service(profile_pb2_grpc.ProfileServiceStub(channel), timeout)
        self.claims = _Service(claim_pb2_grpc.ClaimServiceStub(channel), timeout)
        self.infrastructure = _Service(infrastructure_pb2_grpc.InfrastructureServiceStub(channel), timeout)
        self.cluster = _Service(cluster_pb2_grpc.ClusterServiceStub(channel), timeout)
        self.access = _Service(access_pb2_grpc.AccessServiceStub(channel), timeout)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()


def connect(
    manager: str,
    token: Optional[str] = None,
    ca: Union[str, bytes, None] = None,
    timeout: Optional[float] = 30.0,
) -> Client:
    """Connects to `manager` (`host:port`, `http://host:port` or `https://host:port`).

    TLS is used for `https://` or when `ca` (a PEM file path or PEM bytes) is
    given; `ca` defaults to the system roots. `token` is sent as a bearer
    token on every call. `timeout` bounds each call, in seconds.
    """
    secure = manager.startswith("https://") or ca is not None
    target = manager.split("://", 1)[-1].rstrip("/")
    if secure:
        roots = None
        if isinstance(ca, str):
            with open(ca, "rb") as f:
                roots = f.read()
        elif isinstance(ca, bytes):
            roots = ca
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(root_certificates=roots))
    else:
        channel = grpc.insecure_channel(target)
    if token:
        channel = grpc.intercept_channel(channel, _Bearer(token))
    return Client(channel, timeout)

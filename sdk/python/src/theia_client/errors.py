"""theia's errors as Python exceptions: the gRPC code and message kept."""

from __future__ import annotations

import grpc


class TheiaError(Exception):
    """A call theia refused or could not answer.

    `code` is the gRPC status code name (for example "RESOURCE_EXHAUSTED"),
    `status` the grpc.StatusCode, `message` theia's one-line explanation.
    """

    code = "UNKNOWN"

    def __init__(self, status: grpc.StatusCode, message: str):
        super().__init__(f"{status.name}: {message}")
        self.status = status
        self.code = status.name
        self.message = message


class InvalidArgument(TheiaError):
    """A field is malformed; the message names it."""


class NotFound(TheiaError):
    """Something named does not exist."""


class AlreadyExists(TheiaError):
    """It exists already."""


class FailedPrecondition(TheiaError):
    """The system is not in a state that allows it."""


class ResourceExhausted(TheiaError):
    """A quota or capacity limit: the message says which."""


class Aborted(TheiaError):
    """A write conflict; retrying may succeed."""


class Unavailable(TheiaError):
    """The manager or its store cannot be reached; nothing was changed."""


class PermissionDenied(TheiaError):
    """The caller may not do this."""


class Unauthenticated(TheiaError):
    """No valid token."""


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def from_rpc_error(error: grpc.RpcError) -> TheiaError:
    """The TheiaError for a failed call."""
    status = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    return _BY_CODE.get(status, TheiaError)(status, message or "")

"""gRPC server reflection under both of its names: ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

Current tools and client libraries (grpcurl, Postman, grpc-go's and grpc-java's reflection clients)
ask ``grpc.reflection.v1`` first; older ones know only ``v1alpha``. grpcio-reflection implements only
``v1alpha``. The two protocols are the same messages with the same field numbers under another
package (v1 is v1alpha made stable), so v1 is served by v1alpha's servicer: its descriptor is
v1alpha's, renamed, added to the default descriptor pool (reflection can describe v1 itself), and
each message crosses between the two by its bytes, which are identical.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_reflection.v1alpha import reflection, reflection_pb2

from ._grpc import add_service

V1ALPHA_SERVICE_NAME: str = reflection.SERVICE_NAME
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
#: The names a client may list or call reflection under (auth leaves both open: auth/__init__.py).
SERVICE_NAMES = (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)

_V1_FILE = "grpc/reflection/v1/reflection.proto"  # the upstream file's name, as tools expect it
_V1_PACKAGE = "grpc.reflection.v1"
_V1ALPHA_PACKAGE = reflection_pb2.DESCRIPTOR.package


def add_to_server(server: grpc.aio.Server, service_names: Sequence[str]) -> None:
    """Serve reflection for ``service_names`` (and for both reflection services) under v1 and v1alpha."""
    described = [*service_names, *SERVICE_NAMES]
    servicer = reflection.aio.ReflectionServicer(described)  # type: ignore[attr-defined]  # exported at run time
    add_service(server, servicer, reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"])
    v1 = v1_file().services_by_name["ServerReflection"]
    add_service(server, _V1Servicer(servicer, v1), v1)


def v1_file() -> FileDescriptor:
    """The descriptor of ``grpc/reflection/v1/reflection.proto`` in the default pool (added once)."""
    pool = descriptor_pool.Default()
    try:
        return pool.FindFileByName(_V1_FILE)
    except KeyError:  # not registered yet (by an earlier server of this process, or a library)
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name, proto.package = _V1_FILE, _V1_PACKAGE
    proto.options.Clear()  # v1alpha's are deprecated=true and its language packages
    proto.options.java_package = "io.grpc.reflection.v1"
    proto.options.java_multiple_files = True
    proto.options.java_outer_classname = "ServerReflectionProto"
    proto.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    old, new = f".{_V1ALPHA_PACKAGE}.", f".{_V1_PACKAGE}."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name.removeprefix(old)
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type.removeprefix(old)
            method.output_type = new + method.output_type.removeprefix(old)
    pool.AddSerializedFile(proto.SerializeToString())
    return pool.FindFileByName(_V1_FILE)


class _V1Servicer:
    """``grpc.reflection.v1.ServerReflection``: v1alpha's servicer, each message carried across by
    its bytes (the same in both versions)."""

    def __init__(self, v1alpha: Any, service: ServiceDescriptor) -> None:
        self._v1alpha = v1alpha
        self._response: type[Message] = GetMessageClass(
            service.methods_by_name["ServerReflectionInfo"].output_type
        )

    async def ServerReflectionInfo(  # noqa: N802  # the gRPC method's name
        self, request_iterator: AsyncIterator[Message], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        async for answer in self._v1alpha.ServerReflectionInfo(_as_v1alpha(request_iterator), context):
            yield self._response.FromString(answer.SerializeToString())


async def _as_v1alpha(
    requests: AsyncIterator[Message],
) -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
    async for request in requests:
        yield reflection_pb2.ServerReflectionRequest.FromString(request.SerializeToString())


__all__ = ["SERVICE_NAMES", "V1ALPHA_SERVICE_NAME", "V1_SERVICE_NAME", "add_to_server", "v1_file"]

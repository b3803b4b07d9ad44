import grpc

from coord.cache.v1 import cache_pb2, cache_pb2_grpc


def test_set_then_get(coord):
    with grpc.insecure_channel(coord.target) as ch:
        stub = cache_pb2_grpc.CacheServiceStub(ch)
        stub.Set(cache_pb2.SetRequest(key="k", value=b"v"))
        assert stub.Get(cache_pb2.GetRequest(key="k")).entry.value == b"v"

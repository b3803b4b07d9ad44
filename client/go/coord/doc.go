// Package coord is the small layer over Coord's generated Go stubs (the gen/coord/... packages of this
// module): a connection with the recommended service config ([Dial]), Coord's errors read from their
// status details ([ErrorOf]), conversions between Go's time types and the protobuf ones ([Duration],
// [TimeOf], [LeaseDeadline]) and the resume positions of an events subscription ([Cursors]).
//
// Everything else is the generated code itself: a service is called through its client, such as
// cachev1.NewCacheServiceClient(conn), with the request messages of protos/.
package coord

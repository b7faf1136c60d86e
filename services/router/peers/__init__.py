"""The router's adapters, one per peer: each implements a port of
`services/router/ports.py` over gRPC, turning plain types into protos and
gRPC failures into the port's errors."""

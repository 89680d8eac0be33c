"""How agents talk: the grpc.aio adapter, the in-memory network for tests, and mTLS."""

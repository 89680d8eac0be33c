"""gRPC servicers: authenticate, decode, hand to a core, encode. No protocol logic."""

"""Tasks: handlers, the per-agent executor (capacity + bounded queue + idempotency) and
the router that picks the executing peer under the active policy and fails over."""

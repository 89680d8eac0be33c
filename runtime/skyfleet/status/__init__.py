"""A node's self-reported status (load, policy) and when it is worth gossiping."""

"""The fleet's identities: one CA, node and admin certificates, and who a peer is."""

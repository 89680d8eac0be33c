"""The one error of the config package, and whose fault it is.

    ConfigError (a ValueError)   a setting cannot work; the message starts with its
                                 dotted key (`membership.probe_timeout: ...`) or its file

Always the operator's to fix: configuration is what this node was told by whoever runs
it, never input from a peer (a peer's bad packet is `transport.codec.MalformedPacket`, a
bad policy `policy.errors.PolicyError`). The CLI turns it into exit code 1 with the
message; nothing in here knows of the CLI or gRPC.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with its dotted key."""

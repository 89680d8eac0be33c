"""Every default of the runtime lives in this package, next to the reason for its value."""

from skyfleet.config.membership import MembershipConfig, membership_preset

__all__ = ["MembershipConfig", "membership_preset"]

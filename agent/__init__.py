"""sipagent: a headless SIP presence and instant-messaging agent."""

__version__ = "0.1.0"

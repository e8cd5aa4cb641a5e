"""The SIP adapter (pjsua2)."""

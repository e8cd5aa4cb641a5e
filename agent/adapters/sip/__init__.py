"""The SIP adapter: pjsua2 (and pjsip's C functions through ctypes), on the owner thread only.

The modules here may import one another: together they are one adapter. `stack.SipStack` is
the core's `Sip` port; `presence.SipPresence` its `PresenceSip`.
"""

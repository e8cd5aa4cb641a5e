"""The adapters: the outside world, behind the core's ports (agent.core.ports).

Rule: one outside library per module (pjsip has a folder of its own, agent.adapters.sip, and
so has the outbox's SQLite, agent.adapters.outbox); an adapter imports the core and the config
model (agent.config.model) and nothing else of ours: adapters never import each other. Other
threads (paho's, gpiozero's, the signal and status threads) only post events to the inbox.

A new pin backend is gpiozero's business: agent.adapters.gpio makes the pin factory that
`gpio.pin_factory` names.
"""

"""The core: what the agent decides and does, on the owner thread.

Rule: the core never imports pjsua2, paho, gpiozero, systemd, sqlite3 or ctypes, not even
through another module, and does no I/O of its own (no sockets, threads, signals or
processes). It reaches the world through the ports it defines (agent.core.ports), which the
adapters implement and the owner loop (agent.loop) hands in. It imports the config model
(agent.config.model) and nothing else outside this folder.

A new command goes into agent.core.commands (its table writes `help`), a new MQTT topic into
agent.core.topics (every topic is named there) and what is done with it into agent.core.bridge.
"""

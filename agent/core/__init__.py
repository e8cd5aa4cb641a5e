"""The core: what the agent decides and does. Rule: never imports pjsua2, paho, gpiozero, systemd,
sqlite3 or ctypes, not even through another module; the world is reached through ports
(protocols) defined here."""

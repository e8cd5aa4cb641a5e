"""Hypothesis strategies the pure tests share: command bodies as a careless or hostile sender
writes them. Needs hypothesis (as the pure suite does) and the core, nothing else."""

from __future__ import annotations

import json

from hypothesis import strategies as st

from agent.core.commands import COMMANDS

WORDS = st.sampled_from([*COMMANDS, "gate", "lamp", "dimmer", "2s", "50%", "123456", "{", "é"])
LINES = st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=6).map(" ".join)
# Text bodies: anything, or command-like lines made of real words and noise.
BODIES = st.one_of(st.text(max_size=300), LINES)
# JSON bodies: objects with the keys a command has, holding values of any JSON type.
JSON_BODIES = st.dictionaries(
    st.sampled_from(["command", "target", "duration", "level", "on", "off", "count", "code"]),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), WORDS, st.text(max_size=8)),
).map(json.dumps)

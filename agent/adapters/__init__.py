"""The outside world: one outside library per module; imports core and the config model only."""

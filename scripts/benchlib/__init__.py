"""Pieces of scripts/bench.py: process figures, sipp floods, baresip as a reference."""

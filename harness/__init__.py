"""Benchmark harness for LLM-based and classic recommenders on fixed splits."""

__version__ = "0.1.0"

"""Executors: the local one, and the Ray one with the same interface (the only module that imports Ray)."""

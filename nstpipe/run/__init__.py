"""Executors: the local one, and the Ray one with the same interface; its ray_* modules are the only ones that import Ray."""

"""nstpipe: neural style transfer for videos and photo archives.

Importing the package is cheap and has no side effects; torch is imported only by the
modules that need it (the engine, and the readers that hand it tensors).
"""

__version__ = "0.1.0"

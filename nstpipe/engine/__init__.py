"""The optimization: VGG19 features, loss terms, L-BFGS, the coarse-to-fine loop, devices.

Torch only: no file or network I/O, no printing, no Ray (tests/test_layers.py checks it).
Everything above this package hands it tensors, the VGG19 weights included.
"""

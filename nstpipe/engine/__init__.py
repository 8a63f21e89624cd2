"""The optimization: VGG19 features, loss terms, L-BFGS, the coarse-to-fine loop, devices.

Torch only: no file I/O, no printing, no Ray. Everything above this package hands it tensors.
"""

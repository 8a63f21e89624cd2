"""Files on disk: pictures and videos decoded to arrays and encoded from them, atomic writes,
the frame store, plots, the VGG19 weights. Imports no engine: pictures become the engine's
tensors above it (:func:`nstpipe.modes.model.read_image`)."""

"""Pictures and videos on disk: decoding, encoding, atomic writes, the frame store, plots."""

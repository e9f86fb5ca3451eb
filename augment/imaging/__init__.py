"""Classic image operations on numpy RGB arrays: decode/encode, subject masks, backdrops, geometry, regions.

Pure functions over `uint8` arrays of shape (H, W, 3) in RGB order, built on OpenCV and numpy only. Nothing here
knows about stages, batches, storage or models; the `classic` variant backend and the heuristic scorer compose
these functions. Randomness always comes in as an explicit `numpy.random.Generator`.
"""

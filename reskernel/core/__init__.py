"""The kernel core: architecture specs, arc-cosine maps, the layer maps and the depth
recursion engine, Gram-matrix kernels (tiled recursion or float64 tables), blocked and
sharded kernels, and the infinite-depth limits. Nothing here imports the studies."""

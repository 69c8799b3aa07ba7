"""Compiled (numba) kernels: module-level functions on plain arrays, cached on disk.

Layout shared by every kernel: the potential `u`, the source log-density `logp`, the
right-hand side `out` and the external target data `ext` live on the grid padded by `g`
ghost nodes per side; `lo`, `hi` bound the unknown nodes in padded indices; `geo` is
[h0, h1, h2, x at padded index 0 per axis, box lengths, identity, wrap, box lower corner] where `identity` = 1 means `u`
holds psi with phi = |x|^2/2 + psi (periodic runs) and `wrap` = 1 folds the map into the box.
"""

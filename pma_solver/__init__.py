"""pma_solver: optimal transport maps by the parabolic Monge-Ampere flow on Cartesian grids."""
__version__ = "0.1.0"

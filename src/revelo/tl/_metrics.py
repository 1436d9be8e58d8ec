"""Not yet implemented."""


def cross_boundary_correctness(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError


def in_cluster_coherence(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError


def latent_time_accuracy(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError


def velocity_accuracy(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError


def velocity_consistency(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError



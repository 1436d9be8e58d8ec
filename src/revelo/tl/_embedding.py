"""Not yet implemented."""


def velocity_embedding(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError

"""Not yet implemented."""


def velocity_embedding(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError


def velocity_embedding_grid(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError


def velocity_embedding_stream(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError

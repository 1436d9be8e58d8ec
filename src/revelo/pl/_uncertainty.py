"""Not yet implemented."""


def uncertainty(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError

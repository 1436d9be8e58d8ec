"""Not yet implemented."""


def velocity_confidence(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError

"""Not yet implemented."""


def phase_portrait(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError

"""Not yet implemented."""


def preprocess(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError

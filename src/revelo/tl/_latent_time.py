"""Not yet implemented."""


def latent_time(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError

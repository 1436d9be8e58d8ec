"""Not yet implemented."""


def velocity_graph(adata, **kwargs):
    """Not yet implemented."""
    raise NotImplementedError

"""Not yet implemented."""


def simulate(**kwargs):
    """Not yet implemented."""
    raise NotImplementedError

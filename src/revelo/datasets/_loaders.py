"""Not yet implemented."""


def pancreas(**kwargs):
    """Not yet implemented."""
    raise NotImplementedError


def dentategyrus(**kwargs):
    """Not yet implemented."""
    raise NotImplementedError

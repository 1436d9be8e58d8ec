"""Not yet implemented."""


class REVELO:
    """Not yet implemented."""

"""One exception type for problems a user can fix; the CLI prints its message as one line."""


class ArcHaloError(Exception):
    """A configuration or usage problem with a one-line explanation of what to fix."""

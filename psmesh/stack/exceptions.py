class StackError(RuntimeError):
    """A part of the local stack could not be installed, started or stopped.

    The message says which part, what went wrong and where its log is.
    """

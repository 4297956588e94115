class SourceTablesError(RuntimeError):
    """The source tables could not be created in a source database.

    The message names the database and the server; the driver's error is the cause.
    """

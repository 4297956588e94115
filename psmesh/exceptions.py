class SourceTablesError(RuntimeError):
    """The source tables could not be created in a source database.

    The message names the database and the server; the driver's error is the cause.
    """


class SettingsError(ValueError):
    """A ``PSMESH_*`` environment variable has a value psmesh cannot use.

    ``problems`` holds one line per variable: its name, what it must be and
    what it was (never the value of a secret).
    """

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

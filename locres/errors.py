"""The one exception type that reaches users as a one-line ``error:`` message."""


class LocresError(Exception):
    """Bad input or configuration: the message says what is wrong and what to do.

    Entry points catch it, print ``error: <message>`` on stderr and exit non-zero
    (with a traceback only when ``debug=true``).
    """

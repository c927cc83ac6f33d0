"""No command or worker ends in a traceback."""

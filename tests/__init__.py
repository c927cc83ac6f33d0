"""The test suite: a package, so its helpers are imported by their package path (tests.aws_tables, ...)."""

"""index_file: consume index requests and link each archive file into HSDS in place."""

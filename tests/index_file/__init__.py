"""Tests of the index_file worker."""

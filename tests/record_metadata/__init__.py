"""Tests of the record_metadata worker."""

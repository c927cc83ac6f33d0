"""Tests of the carousel."""

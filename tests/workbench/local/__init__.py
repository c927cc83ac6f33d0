"""Tests of the embedded environment."""

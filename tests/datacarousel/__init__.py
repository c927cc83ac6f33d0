"""Tests of the kernel (datacarousel)."""

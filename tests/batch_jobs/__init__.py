"""Tests of the analyses (batch_jobs)."""

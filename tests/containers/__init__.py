"""Container image tests."""

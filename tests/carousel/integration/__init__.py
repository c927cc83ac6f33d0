"""The carousel against the embedded environment."""

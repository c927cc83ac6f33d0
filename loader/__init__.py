"""loader: list the archive bucket and queue an index request for every readable, not yet indexed file."""

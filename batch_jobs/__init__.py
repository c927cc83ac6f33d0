"""The analyses: one package each, described by its `definition.toml`, side by side, importing only the kernel."""

"""The reliability suite (its helpers are imported by bench/bench_reliability.py too)."""

"""The Data Carousel's planner: pure planning logic, cost model and archive-scale simulator.

Layers: `model` (immutable columnar snapshots), `actions` (what a step asks for),
`query` (typed researcher queries and index lookups), `restore` (restore event
reconciliation), `planner` (the planning step and its policies), `cost` (price
table, estimates, accounting, job status), `catalogue`, `simulator` and `plot`.
No module here does I/O against AWS: adapters apply the actions.
"""

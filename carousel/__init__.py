"""The Data Carousel: its planner, the step that applies it, and the researchers' job API.

Pure (no AWS I/O): `model` (immutable columnar snapshots), `actions` (what a step asks for),
`query` (typed researcher queries), `restore` (restore event reconciliation), `planner` (the
planning step and its policies), `cost` (price table, estimates, accounting), `catalogue`,
`simulator` and `plot`. Adapters, which do the AWS I/O: `store` (conditional DynamoDB writes),
`step` (one carousel step: observe, plan, apply, launch; it wires `observe`, `dead_letters`, `apply`,
`complete` and `launching`, over `step_part`, `step_report`, `queues` and `s3_objects`), `inventory`,
`jobs` (submit, cancel), `recovery` (`datacarousel retry`), `status`, `launch`, `runtime` (settings and clients).
The states and transitions they implement: docs/failure-semantics.md.
"""

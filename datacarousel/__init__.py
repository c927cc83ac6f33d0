"""The kernel: what every part of the Data Carousel shares, knowing none of them.

The contract (tables, states, queues, variables: `contract`), file names and archive keys (`naming`),
messages, whether an archive object is readable now (`archive`), HSDS access (`hsds`, `hsds_target`),
AWS clients (`aws`), the files table, the queue worker, the job SDK for analyses (`job`, `orbit`,
`chunkread`) and the analyses' descriptions (`definitions`, `registry`). The Data Carousel as a whole:
batch analyses over the Terra BasicFusion archive kept in S3 Glacier Deep Archive (README.md).
"""

__version__ = "0.1.0"

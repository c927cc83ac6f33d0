"""The carousel's settings in the embedded environment: the values `up` writes to the env file.

On AWS a Deep Archive restore takes 12-48 h, so the step looks at a restore with no completion
event only after `DC_PROBE_AFTER_S` = 6 h (`datacarousel.contract.DEFAULT_PROBE_AFTER_S`). moto restores
in moments but completes a restore only once something asks about the object (HeadObject): left at
6 h, a researcher's `datacarousel step --loop` shows "restoring N" for six hours. Locally the step
therefore probes after a few seconds (and again as often: the planner's probe interval is
`min(probe_after_s, lease / 2)`), and repeats a lost index request after two minutes instead of an
hour. The AWS defaults in the code and the template stay as they are. Pure: no I/O.
"""

from __future__ import annotations

from datacarousel.contract import Env

# HeadObject a restore this old (seconds); also the interval between two looks at one restore.
LOCAL_PROBE_AFTER_S = 5.0
# Queue an index request again after this long (only once the index queue is empty, see
# carousel/apply.py): longer than one local index_file run of a file, so a live one is not repeated.
LOCAL_INDEX_RETRY_S = 120.0


def local_carousel_env(*, probe_after_s: float = LOCAL_PROBE_AFTER_S) -> dict[str, str]:
    """The carousel variables of the embedded environment (`up`'s env file; the demo adds its own)."""
    return {
        Env.PROBE_AFTER_S: f"{probe_after_s:g}",
        Env.INDEX_RETRY_S: f"{LOCAL_INDEX_RETRY_S:g}",
    }

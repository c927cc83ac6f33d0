"""`hsds`'s own launcher, with a start-up allowance that holds on a busy machine.

hsds (1.0) gives its service and data nodes a fixed 10 s to open their sockets
(`hsds_app.HsdsApp.run`, `MAX_INIT_TIME`) and exits when they are slower, which a loaded
2-core machine sometimes is. That wait is timed with `hsds_app.getNow`; read here through a
clock running `SLOWDOWN` times slower, the allowance becomes 10 s x `SLOWDOWN`. The whole
start-up stays bounded by our own readiness check (`hsds_server.wait_ready`).

    python -m workbench.local.hsds_launch <the arguments of `hsds`>
"""

from __future__ import annotations

from hsds import app, hsds_app

SLOWDOWN = 6.0
_wall_clock = hsds_app.getNow


def _slowed_clock() -> float:
    return float(_wall_clock()) / SLOWDOWN


def main() -> None:
    hsds_app.getNow = _slowed_clock
    app.main()


if __name__ == "__main__":
    main()

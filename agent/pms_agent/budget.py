"""The worker's time budgets, from the arguments (components/rollout-time.ts computes the same
from the stack config and refuses a config whose worst case exceeds the resource timeout)."""

from __future__ import annotations

from .constants import (
    CHECK_TIMEOUT,
    DB_BUDGET,
    DB_RESTORE_BUDGET,
    EXEC_TIMEOUT,
    HANDOFF_TIMEOUT,
    HTTP_TIMEOUT,
    LOCK_TIMEOUT,
    RELAY_MARGIN,
    RESTART_TIMEOUT,
    SYSTEMCTL_TIMEOUT,
)
from .options import Options


def forward(o: Options) -> int:
    """RuntimeMaxSec= of the worker: lock, systemctl calls, check, PostgreSQL, restarts and their exec
    waits, health, probe, window."""
    t = LOCK_TIMEOUT + 8 * SYSTEMCTL_TIMEOUT + o.stable_seconds
    t += len(o.services) * (RESTART_TIMEOUT + 4 * SYSTEMCTL_TIMEOUT + EXEC_TIMEOUT) + len(o.health_urls) * (
        o.health_timeout + HTTP_TIMEOUT
    )
    if o.check:
        t += CHECK_TIMEOUT + 30
    if o.rotate_db_password:
        t += DB_BUDGET
    if o.login_url:
        t += 3 * HTTP_TIMEOUT
    return t


def rollback(o: Options) -> int:
    """TimeoutStopSec= of the worker (then systemd kills it)."""
    t = 2 * SYSTEMCTL_TIMEOUT + len(o.health_urls) * (o.health_timeout + HTTP_TIMEOUT)
    t += len(o.services) * (RESTART_TIMEOUT + 4 * SYSTEMCTL_TIMEOUT + EXEC_TIMEOUT + o.stable_seconds)
    if o.rotate_db_password:
        t += DB_RESTORE_BUDGET
    return t


def worst_case(o: Options) -> int:
    """The longest a run can take on the host: start and hand-off, the worker's two budgets, the relay."""
    return SYSTEMCTL_TIMEOUT + HANDOFF_TIMEOUT + forward(o) + rollback(o) + RELAY_MARGIN

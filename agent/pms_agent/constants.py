"""Paths, names and time bounds the operators, docs and components/rollout-time.ts rely on."""

PROG = "pms-rollout"
STATE_DIR = "/var/lib/pms-secrets"
RUNS_DIR = STATE_DIR + "/runs"
BACKUP_ROOT = STATE_DIR + "/backups"
LOCK_FILE = STATE_DIR + "/lock"
DB_CLOSE_PENDING = STATE_DIR + "/db-close-pending"
PID_FILE = STATE_DIR + "/rollout.pid"
DROPIN_NAME = "50-pms-secrets.conf"
PRIVATE_PREFIX = ".pms-secrets."
END_MARKER = "# pms-secrets-end sha256="
LOCK_TIMEOUT = 120
CHECK_TIMEOUT = 180
RESTART_TIMEOUT = 90
SYSTEMCTL_TIMEOUT = 15
HTTP_TIMEOUT = 5
HANDOFF_TIMEOUT = 30
# How long the proof after a restart waits for the main process systemd forked to exec the unit's
# command (a Type=simple restart returns at the fork).
EXEC_TIMEOUT = 10
# What the PostgreSQL steps may take: the change (host lookup 10 + login 30 + read 60 + ALTER 60 +
# login 30), and its rollback (two psql calls of 60).
DB_BUDGET = 190
DB_RESTORE_BUDGET = 120
RELAY_MARGIN = 60
# An env file is a few KB; root never reads more than this from a path in the env directory.
MAX_ENV_BYTES = 1048576
EXIT_DRIFT = 3
EXIT_USAGE = 2
# Longest relayed line, in characters (pulumi-command 1.2.1 relays lines up to 64 KiB).
MAX_LINE = 8000
# The two errors the old guide names for a missing key, as a Python traceback's last line.
KEY_ERROR_PATTERN = (
    r"^([A-Za-z_][A-Za-z0-9_.]*\.)?(ValueError: SECRET_KEY environment variable must be set"
    r"|ImproperlyConfigured: The SECRET_KEY setting must not be empty)"
)

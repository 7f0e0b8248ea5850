"""Entry of the agent's worker (the transient unit runs `python3 -I main.py worker RUN_DIR`)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pms_agent.frontend import entry

sys.exit(entry(sys.argv[1:]))

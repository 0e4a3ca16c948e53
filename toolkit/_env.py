"""The name of every environment variable the toolkit reads or sets (``TOOLKIT_*``).

Each name is spelled here once; modules import the constant, so that a search for a
variable finds this list, with what it does, and every place that uses it.
"""
from __future__ import annotations

#: a file each recorded execution (computed or reused) is appended to as one JSON line
#: (``toolkit run`` sets it to the run folder's ``executions.jsonl``)
RUN_LOG = "TOOLKIT_RUN_LOG"
#: ``production`` makes gates stop a run; else interactive (``toolkit.set_mode`` wins)
MODE = "TOOLKIT_MODE"
#: ``1`` keeps TensorFlow's and Beam's log output, which the toolkit silences by default
VERBOSE = "TOOLKIT_VERBOSE"
#: replaces the host identity recorded with each execution (host name, boot, PID namespace)
HOST_ID = "TOOLKIT_HOST_ID"
#: live progress lines of running components: ``0`` turns them off, ``text`` writes them to
#: standard error even in a notebook kernel (``toolkit run`` sets it for its kernel); unset:
#: a display in a notebook, text elsewhere
PROGRESS = "TOOLKIT_PROGRESS"
#: the default lease length, in seconds, of running executions and push copies
LEASE_SECONDS = "TOOLKIT_LEASE_SECONDS"
#: run policies to install beyond the standard ones: registered names or ``module:factory``
POLICIES = "TOOLKIT_POLICIES"
#: ``1``: a run whose cache key another live process is computing waits for it and reuses
#: its outputs (single flight) instead of computing beside it; sweeps set it for their points
SINGLE_FLIGHT = "TOOLKIT_SINGLE_FLIGHT"
#: the folder under which the Pusher may push when no ``allowed_root`` is given
PUSH_ROOT = "TOOLKIT_PUSH_ROOT"
#: the project folder a Kubeflow Pipelines task runs its exported notebook from
PROJECT_DIR = "TOOLKIT_PROJECT_DIR"
#: the one component a pipeline step executes (installs the pipeline-step policy)
ONLY_COMPONENT = "TOOLKIT_ONLY_COMPONENT"
#: the components (comma-separated ids) a pipeline step reads from the store
UPSTREAM_COMPONENTS = "TOOLKIT_UPSTREAM_COMPONENTS"
#: the temporary folder a pipeline step runs carried sources in (nothing may be kept there)
TASK_SCRATCH = "TOOLKIT_TASK_SCRATCH"
#: the start of the shared MySQL store's settings, the five names below
MYSQL_PREFIX = "TOOLKIT_MYSQL_"
#: the MySQL server's name or IP address (unset: the SQLite file under pipeline_root)
MYSQL_HOST = "TOOLKIT_MYSQL_HOST"
#: the MySQL server's TCP port (3306 when unset)
MYSQL_PORT = "TOOLKIT_MYSQL_PORT"
#: the MySQL database that holds the store
MYSQL_DATABASE = "TOOLKIT_MYSQL_DATABASE"
#: the MySQL user to connect as
MYSQL_USER = "TOOLKIT_MYSQL_USER"
#: the MySQL user's password (empty when unset)
MYSQL_PASSWORD = "TOOLKIT_MYSQL_PASSWORD"

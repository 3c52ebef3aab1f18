"""Any offline command over many files on Dask: naming, resume, retries, timeouts, summary.

The command table (which step runs, how its options parse) lives with the CLI in
``auracore.control.cmd_batch``; this package runs a picklable ``task(input, output)`` over
the files on a Dask cluster (a LocalCluster, or a scheduler address) and reports.
"""

from .core import BatchResult, run_batch, worker_cached
from .naming import finished, output_name, plan

__all__ = ["BatchResult", "run_batch", "worker_cached", "finished", "output_name", "plan"]

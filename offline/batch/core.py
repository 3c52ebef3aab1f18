"""Run one task per file on a Dask cluster: skip finished outputs, retry lost work, time out.

Only paths travel to the workers (never arrays); every task writes its own output atomically,
so a worker killed mid-file leaves nothing under its output name and the file is run again
(Dask reschedules the work of a lost worker; a task that still fails with something other
than an ``AuraCoreError`` is resubmitted up to ``retries`` times). An ``AuraCoreError`` (a bad
file, a bad option) is the file's failure reason and is not retried. A file that runs longer
than ``timeout_s`` is reported as timed out and its worker is restarted (through its nanny)
so the runaway work stops.
"""

import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field

from auracore.errors import AuraCoreError, ConfigError, clip_text, one_line
from auracore.offline.pipeline import set_threaded

from .naming import finished

_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def worker_cached(key, make):
    """make() once per process (per Dask worker) for key, then the same object: models and
    sessions load once per worker, not once per file."""
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = make()
        return _CACHE[key]


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: counts, failures with reasons, time and throughput."""

    command: str
    out_dir: str
    total: int                      # distinct inputs
    done: int                       # outputs written by this run
    skipped: int                    # outputs already present (resume)
    failures: tuple = ()            # ({"input", "reason"}, ...)
    time_s: float = 0.0             # wall time of the whole run: warm-up, cluster start and shutdown included
    files_per_s: float = 0.0        # files done by this run per second of time_s
    input_mb_per_s: float = 0.0     # input megabytes (1e6 bytes) done per second of time_s
    workers: int = 0
    scheduler: str = ""
    warm_s: float = 0.0             # of time_s: the warm-up in this process
    startup_s: float = 0.0          # of time_s: starting or reaching the cluster, and warming its workers
    files_s: float = 0.0            # of time_s: from the first submission to the last result
    resubmitted: int = 0            # tasks run again after an error or a lost worker
    outputs: dict = field(default_factory=dict)  # input -> output path, every input

    def to_dict(self) -> dict:
        d = asdict(self)
        d["failed"] = len(self.failures)
        d["failures"] = list(self.failures)
        return d


def _run_one(task, input_path: str, output_path: str, timeout_s: float | None) -> dict:
    """On a worker: task(input, output), in a thread of its own for at most timeout_s seconds
    when timeout_s is given. Returns
    {"ok": True} or {"ok": False, "reason": ...} (and "restart": this worker's address after a
    timeout). An unexpected exception propagates, for the client to resubmit."""
    box = {}

    def target():
        try:
            task(input_path, output_path)
            box["ok"] = True
        except AuraCoreError as exc:
            box["reason"] = one_line(clip_text(str(exc), 400))
        except BaseException as exc:  # noqa: BLE001 (handed to the waiting thread)
            box["error"] = exc

    if finished(output_path):  # a retried or rescheduled task whose first run completed
        return {"ok": True}
    set_threaded(False)  # a worker per core already: the file passes run in turn, without threads
    if timeout_s is None:
        target()
        thread = None
    else:
        thread = threading.Thread(target=target, name=f"auracore-batch-{os.path.basename(input_path)}", daemon=True)
        thread.start()
        thread.join(timeout_s)
    if thread is not None and thread.is_alive():
        address = None
        try:
            from distributed import get_worker

            address = get_worker().address
        except (ImportError, ValueError):
            pass
        return {"ok": False, "reason": f"timed out after {timeout_s:g} s", "restart": address}
    if "error" in box:
        raise box["error"]
    if "reason" in box:
        return {"ok": False, "reason": box["reason"]}
    return {"ok": True}


def _reason(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return "its worker died while running it, too many times (a crash or out of memory?)"
    return f"internal error: {name}: {one_line(clip_text(str(exc), 300))}"


def _client(scheduler: str | None, workers: int | None, memory_limit):
    """(client, cluster or None, address): a LocalCluster of `workers` single-threaded
    processes (default: one per core) when scheduler is None, else a client of it."""
    from distributed import Client, LocalCluster

    for name in ("distributed", "tornado"):  # a file's failure is our own one line, never Dask's log
        logging.getLogger(name).setLevel(logging.CRITICAL + 10)
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {scheduler} ({one_line(clip_text(exc, 200))}); "
                              "is it running?") from None
        return client, None, scheduler
    n = workers or os.cpu_count() or 1
    import dask

    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers; setting it at all turns
    # off glibc's dynamic mmap threshold, so every block-sized array is a fresh mmap with its
    # page faults: render ran 1.3-1.5x slower per file in a worker than here. None unsets it.
    # The statistical profiler samples every thread's stack every 10 ms, taking the GIL from
    # the task's block loop; nobody reads its profiles here.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0",
                               memory_limit=memory_limit if memory_limit is not None else "auto",
                               silence_logs=logging.CRITICAL)
    return Client(cluster), cluster, cluster.scheduler_address


def run_batch(command: str, task, pairs, out_dir: str, scheduler: str | None = None, workers: int | None = None,
              retries: int = 0, timeout_s: float | None = None, memory_limit=None, warm=None,
              progress=None) -> BatchResult:
    """Run task(input, output) for each (input, output) in pairs whose output is not present.

    scheduler: a Dask scheduler address (None: a LocalCluster of `workers` processes, one
    thread each, `memory_limit` per worker as Dask takes it: "2GB", a byte count, 0 for none,
    default "auto"). warm(): called in this process before the cluster starts (compiles the
    Numba kernels the task needs, so workers only load caches), then once on every worker
    before the files (each loads its modules and caches before the clock of the files starts;
    a failure there is left for the files to report). progress(total) -> bar with
    update(n)/close(), or None. Returns the BatchResult; raises ConfigError for a scheduler
    that cannot be reached."""
    started = time.perf_counter()
    todo = [(i, o) for i, o in pairs if not finished(o)]
    skipped = len(pairs) - len(todo)
    outputs = {i: o for i, o in pairs}
    failures, done, resubmitted, n_workers, address = [], 0, 0, 0, scheduler or ""
    done_bytes = 0
    warm_s = startup_s = files_s = 0.0
    if todo:
        if warm is not None:
            warm()
        warm_s = time.perf_counter() - started
        client, cluster, address = _client(scheduler, workers, memory_limit)
        bar = None
        try:
            if warm is not None:
                _warm_workers(client, warm)
            startup_s = time.perf_counter() - started - warm_s
            bar = progress(len(todo)) if progress else None
            t_files = time.perf_counter()
            n_workers = len(client.scheduler_info(n_workers=-1).get("workers", {})) if cluster is None else len(cluster.workers)
            done, done_bytes, resubmitted = _drive(client, task, todo, retries, timeout_s, failures, bar)
            files_s = time.perf_counter() - t_files
        finally:
            if bar:
                bar.close()
            client.close()
            if cluster is not None:
                cluster.close()
            _remove_leftovers(out_dir)
    elapsed = time.perf_counter() - started
    failures.sort(key=lambda f: f["input"])
    return BatchResult(command=command, out_dir=os.path.abspath(out_dir), total=len(pairs), done=done,
                       skipped=skipped, failures=tuple(failures), time_s=round(elapsed, 3),
                       files_per_s=round(done / elapsed, 3) if elapsed > 0 else 0.0,
                       input_mb_per_s=round(done_bytes / 1e6 / elapsed, 3) if elapsed > 0 else 0.0,
                       workers=n_workers, scheduler=address, warm_s=round(warm_s, 3), startup_s=round(startup_s, 3),
                       files_s=round(files_s, 3),
                       resubmitted=resubmitted, outputs=outputs)


def _warm_quietly(warm) -> None:
    try:
        warm()
    except Exception:  # noqa: BLE001 (the files' own tasks report what fails)
        pass


def _warm_workers(client, warm) -> None:
    """warm() once on each worker now connected, all at once (they only read the caches the
    client wrote)."""
    from distributed import wait

    addresses = list(client.scheduler_info(n_workers=-1).get("workers", {}))
    futures = [client.submit(_warm_quietly, warm, workers=[a], allow_other_workers=False, pure=False,
                             key=f"auracore-batch-warm-{i}-{time.monotonic_ns()}") for i, a in enumerate(addresses)]
    wait(futures)
    for f in futures:
        f.release()


def _remove_leftovers(out_dir: str) -> None:
    """Remove the temporary files (and separate's folders) a killed worker left half-written
    under out_dir: every task of this batch has ended, so none is still being written (two
    batches must not write into one folder at the same time)."""
    import shutil

    from auracore.offline.audio_io import TEMP_PREFIX

    try:
        names = os.listdir(out_dir)
    except OSError:
        return
    for name in names:
        if name.startswith(TEMP_PREFIX):
            path = os.path.join(out_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _drive(client, task, todo, retries, timeout_s, failures, bar):
    """Submit every pair, collect as they finish, resubmit errors; (done, bytes, resubmitted)."""
    from distributed import as_completed

    import itertools

    meta = {}
    serial = itertools.count()  # keys carry no path: Dask keys must encode as UTF-8
    queue = as_completed()

    def submit(pair, attempt):
        fut = client.submit(_run_one, task, pair[0], pair[1], timeout_s, pure=False,
                            key=f"auracore-batch-{next(serial)}-{attempt}-{time.monotonic_ns()}")
        meta[fut.key] = (pair, attempt)
        queue.add(fut)

    for pair in todo:
        submit(pair, 0)
    done = done_bytes = resubmitted = 0
    for fut in queue:
        pair, attempt = meta.pop(fut.key)
        if fut.status == "finished":
            result = fut.result()
            if result["ok"]:
                done += 1
                try:
                    done_bytes += os.path.getsize(pair[0])
                except OSError:
                    pass
            else:
                failures.append({"input": pair[0], "reason": result["reason"]})
                if result.get("restart"):
                    try:  # the runaway thread dies with its process; the nanny starts a fresh one
                        client.restart_workers([result["restart"]], timeout=60)
                    except Exception:  # noqa: BLE001 (no nanny: the thread runs on, its output still atomic)
                        pass
        else:
            exc = fut.exception() if fut.status == "error" else None
            if attempt < retries:
                resubmitted += 1
                fut.release()
                submit(pair, attempt + 1)
                continue
            failures.append({"input": pair[0], "reason": _reason(exc) if exc else f"task {fut.status}"})
        fut.release()
        if bar:
            bar.update(1)
    return done, done_bytes, resubmitted

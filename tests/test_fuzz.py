"""The fuzz suite in CI: 600 generated cases of bad inputs, options, outputs and signals
through the real command line (tests/fuzz.py; the full set is `python tests/fuzz.py`)."""

import json
import os
import subprocess
import sys

from fuzz import COMMANDS

CI_CASES = 600
CI_SEED = 20261202
BATCH_CASES = 24


def run_fuzz_process(cases: int, seed: int, commands) -> dict:
    fuzz = os.path.join(os.path.dirname(__file__), "fuzz.py")
    r = subprocess.run([sys.executable, fuzz, "--cases", str(cases), "--seed", str(seed), "--json",
                        "--commands", ",".join(sorted(commands))], capture_output=True, text=True, timeout=1200)
    assert r.returncode in (0, 1), r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["cases"] == cases
    assert set(summary["by_command"]) == set(commands), summary["by_command"]
    # the generator reaches every outcome the contract speaks of
    assert {"0", "1", "2"} <= set(summary["exit_codes"]), summary["exit_codes"]
    assert summary["failures"] == 0, json.dumps(summary["failing"][:10], indent=1)
    return summary


def test_fuzzed_command_lines_hold_the_contract():
    """Each case: no traceback or warning, a documented exit code, inputs unchanged, no
    temporary or partial file left, peak memory bounded, no hang; over every registered
    command (the fuzz parent runs each once first, so the forked children start warm).

    The parent is a fresh interpreter, not this one: pytest has imported torch and the
    other tests' libraries by now, and a child forked from a process holding those runtimes
    once died of a segmentation fault inside a command that never uses them."""
    run_fuzz_process(CI_CASES, CI_SEED, [c for c in COMMANDS if c != "batch"])


def test_fuzzed_batch_command_lines_hold_the_contract():
    """The same contract for `batch`, on fewer cases: each starts a Dask cluster (2-12 s)."""
    run_fuzz_process(BATCH_CASES, CI_SEED, ["batch"])

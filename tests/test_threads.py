"""seqrec.threads: environment defaults at import, a user's settings kept, train.threads = N everywhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest
import torch

from seqrec import threads

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(code: str, **env: str) -> dict:
    """Run ``code`` in a fresh interpreter (no thread variables inherited); its last stdout line as JSON."""
    drop = {*threads.ENV_DEFAULTS, *threads.USER_WAIT_SETTINGS, "POLARS_MAX_THREADS"}
    base = {k: v for k, v in os.environ.items() if k not in drop}
    r = subprocess.run([sys.executable, "-c", code], env={**base, "PYTHONPATH": SRC, **env},
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.fixture
def restore_pools():
    t, nb = torch.get_num_threads(), numba.get_num_threads()
    yield
    torch.set_num_threads(t)
    numba.set_num_threads(nb)


def test_env_defaults_fill_only_what_is_unset():
    env: dict[str, str] = {}
    assert threads.set_env_defaults(env, busy=True) == threads.ENV_DEFAULTS
    assert env == threads.ENV_DEFAULTS
    user = {"OMP_WAIT_POLICY": "ACTIVE"}
    applied = threads.set_env_defaults(user, busy=True)
    assert user["OMP_WAIT_POLICY"] == "ACTIVE" and "OMP_WAIT_POLICY" not in applied
    spin = {"GOMP_SPINCOUNT": "1000"}  # the user tunes the waiting: no policy on top
    assert "OMP_WAIT_POLICY" not in threads.set_env_defaults(spin, busy=True) and "OMP_WAIT_POLICY" not in spin


def test_idle_cpu_keeps_libgomp_spinning_busy_cpu_sleeps(monkeypatch):
    idle: dict[str, str] = {}
    assert threads.set_env_defaults(idle, busy=False) == {} and idle == {}
    monkeypatch.setattr(threads, "others_running", lambda: 0.0)
    assert not threads.cpu_is_busy()
    monkeypatch.setattr(threads, "others_running", lambda: 2.0)
    assert threads.cpu_is_busy() == (max(1.0, (os.cpu_count() or 1) / 4) <= 2.0)


def test_others_running_reads_the_machine():
    assert threads.others_running() >= 0.0


def test_import_seqrec_sets_the_defaults_before_torch_is_loaded():
    got = _python("import json, os, sys; import seqrec; "
                  "print(json.dumps({'env': {k: os.environ.get(k) for k in seqrec.threads.ENV_DEFAULTS}, "
                  "'busy': seqrec.threads.cpu_is_busy(), "
                  "'torch': 'torch' in sys.modules, 'numba': 'numba' in sys.modules}))")
    assert got["torch"] is False and got["numba"] is False  # the policy is chosen before libgomp loads
    # which policy (PASSIVE or none) depends on the load at that instant: set_env_defaults' own tests
    # pin both branches with busy=True / busy=False


def test_a_users_environment_is_respected():
    got = _python("import json, os; import seqrec; print(json.dumps(os.environ.get('OMP_WAIT_POLICY')))",
                  OMP_WAIT_POLICY="active")
    assert got == "active"


def test_explicit_threads_set_every_pool(restore_pools):
    assert threads.configure_threads(1) == 1
    assert torch.get_num_threads() == 1
    assert numba.get_num_threads() == 1


def test_explicit_threads_reach_polars_and_interop_in_a_fresh_process():
    got = _python("import json; from seqrec.threads import configure_threads; import torch, numba; "
                  "n = configure_threads(1); import polars; "
                  "print(json.dumps([n, torch.get_num_threads(), torch.get_num_interop_threads(), "
                  "numba.get_num_threads(), polars.thread_pool_size()]))")
    assert got == [1, 1, 1, 1, 1]


def test_numba_starting_its_pool_does_not_undo_torchs_count():
    """numba's omp pool, started on first use, sets the OpenMP thread count to NUMBA_NUM_THREADS
    in torch's runtime too: torch.set_num_threads(1), any torch call, then numba -> torch on 2
    threads. configure_threads starts numba's pool first."""
    trap = _python("import json, torch, numba; torch.set_num_threads(1); torch.get_num_threads(); "
                   "numba.set_num_threads(1); "
                   "print(json.dumps([torch.get_num_threads(), numba.threading_layer()]))")
    if trap[1] == "omp":
        assert trap[0] == numba.config.NUMBA_NUM_THREADS
    fixed = _python("import json, torch, numba; from seqrec.threads import configure_threads; "
                    "torch.get_num_threads(); configure_threads(1); numba.set_num_threads(1); "
                    "print(json.dumps(torch.get_num_threads()))")
    assert fixed == 1


def test_default_path_keeps_torch_and_gives_numba_the_same(restore_pools):
    torch.set_num_threads(1)
    n = threads.configure_threads(0)
    assert n == torch.get_num_threads() == 1  # 0 leaves torch's count alone
    assert numba.get_num_threads() == min(1, numba.config.NUMBA_NUM_THREADS)


def test_negative_threads_are_refused():
    with pytest.raises(ValueError, match="threads"):
        threads.configure_threads(-1)

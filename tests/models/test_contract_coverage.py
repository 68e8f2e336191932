"""Every registered model is covered by a contract suite: a new model without one fails here.

Each ``tests/models/test_*_contract.py`` names the registry entries its tests are
parametrised over in ``CONTRACT_MODELS``; together they must be exactly the registry.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from seqrec.registry import model_names

HERE = Path(__file__).resolve().parent


def contract_suites() -> dict[str, set[str]]:
    suites = {}
    for path in sorted(HERE.glob("test_*_contract.py")):
        spec = importlib.util.spec_from_file_location(f"_contract_suite_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert getattr(mod, "CONTRACT_MODELS", None), f"{path.name} does not say which models it covers"
        suites[path.name] = set(mod.CONTRACT_MODELS)
    return suites


def test_every_registered_model_has_a_contract_suite():
    suites = contract_suites()
    assert {"test_ctr_contract.py", "test_session_contract.py", "test_purchase_contract.py",
            "test_purchase_baseline_contract.py"} <= set(suites)
    covered = set().union(*suites.values())
    registered = set(model_names())
    missing = sorted(registered - covered)
    assert not missing, (f"registered model(s) {missing} have no contract tests: add them to a "
                         "tests/models/test_*_contract.py suite and its CONTRACT_MODELS")
    assert not covered - registered, f"contract suites name unregistered models {sorted(covered - registered)}"
    for family in ("gru4rec", "hrnn", "baseline", "ctr", "purchase"):
        assert set(model_names(family)) <= covered, family

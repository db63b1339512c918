"""Studies: one module per study, found by name (see benchmark/study.py for the contract)."""

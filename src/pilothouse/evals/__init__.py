"""Eval-as-code: suites in files, hashed datasets, scorers, a reproducible runner, gates."""

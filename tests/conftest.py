"""Test-wide settings: hypothesis without wall-clock limits; the attack matrix, run once per session.

A 2-core CI machine runs some examples ten times slower than a laptop; a per-example deadline or
the "too slow" health check would then fail a test for the machine's speed, not for a bug. The
attack matrix (every attack in real calls, both modes, fixed and naive members: eleven calls of
1.5 s) is shared by ``tests/test_attacks_sfu.py`` and ``tests/test_attacks_group.py``.
"""

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("e2ee-lab", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("e2ee-lab")


@pytest.fixture(scope="session")
def attack_matrix():
    """:func:`e2ee_lab.attacks.runner.run_matrix` with seed 1 (real calls; about 25 s)."""
    from e2ee_lab.attacks import runner

    return runner.run_matrix(seed=1)

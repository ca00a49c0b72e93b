"""Test-wide settings: hypothesis without wall-clock limits.

A 2-core CI machine runs some examples ten times slower than a laptop; a per-example deadline or
the "too slow" health check would then fail a test for the machine's speed, not for a bug.
"""

from hypothesis import HealthCheck, settings

settings.register_profile("e2ee-lab", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("e2ee-lab")

"""Shared fixtures.  Nothing here imports torch (it is optional and slow to import)."""

import os
import zlib

import numpy as np
import pytest
from hypothesis import settings

# default: a modest number of examples (the test-suite must stay fast);
# HYPOTHESIS_PROFILE=thorough for a longer randomized run.
settings.register_profile("patchjit", max_examples=30, deadline=None)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "patchjit"))


@pytest.fixture
def rng(request):
    """A numpy Generator seeded from the test's node id (reproducible per test)."""
    seed = zlib.crc32(request.node.nodeid.encode())
    return np.random.default_rng(seed)

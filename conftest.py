"""Doctest collection: patchjit/torch/ imports torch (the optional ``torch`` extra)."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["patchjit/torch"]

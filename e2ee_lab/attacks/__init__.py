"""Attacks the lab demonstrates: a malicious SFU (``sfu``) and crypto pitfalls (``crypto``).

Import from the submodules; this package imports nothing itself.
"""

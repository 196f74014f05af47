"""A lab on one machine: pulse clusters in Linux network namespaces.

Used by ``pulse demo``, by the benchmarks in ``bench/`` and by the end-to-end
tests. Only documentation address ranges, only namespaces it created itself; see
:mod:`pulse_lab.netns` for the safety rules.
"""

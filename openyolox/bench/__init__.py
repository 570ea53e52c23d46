"""Measuring code shared by ``openyolox benchmark`` and the scripts in ``benchmarks/``."""

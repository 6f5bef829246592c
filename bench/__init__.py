"""Benchmarks: gateway overhead and streaming vs direct and vs LiteLLM, cold start, embedding jobs.

``python -m bench`` (``make bench``) runs them all; ``python -m bench --smoke`` is the CI size.
See bench/README.md for the method and how to read the figures.
"""

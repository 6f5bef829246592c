"""Tests of the local Functions host (devhost) and the local stack."""

"""Offline checks of azure.yaml and the Bicep templates under infra/."""

"""Zicht: models."""

"""Zicht: features."""

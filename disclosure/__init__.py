"""Zicht: disclosure."""

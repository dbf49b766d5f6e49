"""Zicht: reports."""

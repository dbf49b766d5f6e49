"""Zicht: microdata."""

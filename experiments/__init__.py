"""Zicht: experiments."""

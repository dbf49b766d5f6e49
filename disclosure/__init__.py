"""Zicht: disclosure control, the single gate to the public zone.

The pure core: :func:`primary` (primary rules), :func:`protect` (secondary suppression)
and :func:`audit` (the attacker's intervals by LP), all driven by :class:`RuleSettings`.
"""

from disclosure.audit import audit
from disclosure.primary import primary, required_protection
from disclosure.settings import DisclosureInputError, DisclosureRefused, RuleSettings
from disclosure.suppress import Protection, protect

__all__ = [
    "DisclosureInputError",
    "DisclosureRefused",
    "Protection",
    "RuleSettings",
    "audit",
    "primary",
    "protect",
    "required_protection",
]

"""The lint rules. Importing this package registers every rule in ``RULES``."""

from transship.slim.lint.rules import (  # noqa: F401  (imported to register the rules)
    base_image,
    caches,
    context,
    files,
    installs,
    layers,
)
from transship.slim.lint.rules.base import RULES, Hit, LintContext, Rule, Severity, iter_rules

__all__ = ["RULES", "Hit", "LintContext", "Rule", "Severity", "iter_rules"]

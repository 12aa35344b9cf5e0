"""Published claims as executable checks over a results store (`xltune claims`); see docs/claims.md."""

from __future__ import annotations

from . import checks  # noqa: F401  (registers the check kinds)
from .core import (CHECKS, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE, STATUSES, SUPPORTED, Claim, Verdict,
                   check_claims, format_verdicts, load_claims)

__all__ = ["CHECKS", "CONTRADICTED", "INCONCLUSIVE", "NOT_TESTABLE", "STATUSES", "SUPPORTED", "Claim", "Verdict",
           "check_claims", "format_verdicts", "load_claims"]

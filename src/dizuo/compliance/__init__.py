"""Compliance: how long records are kept and the job that removes what has outlived it (more to come:
AIGC labels, the audit trail, the regulator's reports)."""

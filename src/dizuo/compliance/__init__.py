"""Compliance: AIGC labels on generated content and their verification, the tamper-evident audit
trail, how long records are kept, and the regulator's monthly pack."""

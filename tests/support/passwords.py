"""Members' passwords hashed at argon2id's lowest cost while the suite runs.

The platform hashes a password at 64 MiB and 3 passes (``PASSWORD_HASHER``): about 0.14 s of CPU
here, once for every member a test makes and every sign-in. The suite makes hundreds of both, so
it hashes at 1 MiB and one pass instead; verifying reads the parameters from the stored hash, so
either kind signs in. ``tests/accounts/test_members.py`` checks what the platform itself stores. The
``dizuo`` program started as a process hashes at the platform's cost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from dizuo.accounts import members

__all__ = ["PLATFORM_HASHER", "cheap_password_hashes"]

PLATFORM_HASHER = members.PASSWORD_HASHER
CHEAP = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session", autouse=True)
def cheap_password_hashes() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(members, "PASSWORD_HASHER", CHEAP)
        yield

from __future__ import annotations

import pytest

from dizuo.apps.inspection import History, Standard, load_history, load_standard
from tests.apps.inspection.reports import DEFECTS, STANDARD


@pytest.fixture(scope="session")
def standard() -> Standard:
    return load_standard([(STANDARD.name, STANDARD.read_bytes())])


@pytest.fixture(scope="session")
def history() -> History:
    return load_history([(DEFECTS.name, DEFECTS.read_bytes())])

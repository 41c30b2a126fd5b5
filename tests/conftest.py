"""Shared pytest setup: engine fixtures and the flag that rewrites golden SQL files."""

from __future__ import annotations

import pytest

pytest_plugins = ["tests.support.fixtures"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite the golden SQL files under tests/golden/ from the current compiler.",
    )


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))

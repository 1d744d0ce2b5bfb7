"""Infra test fixtures: tiny Lambda assets (per function: its own package + shared/, no vendored deps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import packaging, settings


@pytest.fixture(scope="module")
def tiny_asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synth needs no network and copies a few MB instead of the real assets' ~90 MB."""
    out = tmp_path_factory.mktemp("lambda-asset")
    for function in settings.LAMBDA_DEPENDENCIES:
        packaging.copy_sources(out / function, function)
    return out

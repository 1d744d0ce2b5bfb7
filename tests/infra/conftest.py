"""Infra test fixtures: a tiny Lambda asset (just functions/ + shared/, no vendored deps)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra import packaging


@pytest.fixture(scope="module")
def tiny_asset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Synth needs no network and copies a few hundred KB instead of the ~30 MB real asset."""
    out = tmp_path_factory.mktemp("lambda-asset")
    packaging.copy_sources(out)
    return out

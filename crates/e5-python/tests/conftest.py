"""Shared fixtures: the repository's models and texts, and the `e5` binary built by cargo.

A missing model or binary fails the run (never a silent skip): run `bash tools/setup-models.sh`
and `cargo build --release -p e5-cli` first (tools/test.sh does both)."""

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
MODELS = Path(os.environ.get("E5_MODELS_DIR", ROOT / "models"))
E5_BIN = Path(os.environ.get("E5_BIN", ROOT / "target" / "release" / "e5"))


def _need(path):
    assert path.exists(), f"{path} is missing (see tests/conftest.py)"
    return path


@pytest.fixture(scope="session")
def tiny():
    return str(_need(ROOT / "tests" / "fixtures" / "tiny-xlmr"))


@pytest.fixture(scope="session")
def e5_small():
    return str(_need(MODELS / "multilingual-e5-small" / "model.safetensors").parent)


@pytest.fixture(scope="session")
def e5_bin():
    return str(_need(E5_BIN))


@pytest.fixture(scope="session")
def texts():
    """Real sentences in many scripts (the multilingual fixture): its 91 short texts, one
    passage of ~150 tokens and one over the 512-token limit, to keep the suite quick."""
    lines = (ROOT / "tests" / "fixtures" / "texts" / "multilingual.jsonl").read_text().splitlines()
    every = [json.loads(line)["text"] for line in lines if line.strip()]
    return every[:91] + [every[91], every[-1]]

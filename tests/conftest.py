"""Shared test fixtures: keep the suite hermetic and reproducible."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _isolated_user_state(tmp_path_factory: pytest.TempPathFactory):
    """Never read or write the real user cache, nor honour a developer's data env vars."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        mp.delenv("AEDENOISE_FASHION_MNIST", raising=False)
        yield


@pytest.fixture(autouse=True, scope="session")
def _single_thread():
    """Tests use tiny tensors: one intra-op thread is faster and immune to oversubscription."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def gen() -> torch.Generator:
    """A fresh CPU generator with a fixed seed."""
    return torch.Generator().manual_seed(1234)

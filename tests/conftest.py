"""Shared fixtures. Tests never need the network; the gpu path runs against local stand-ins."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("COURSE_LIB_SOLUTIONS", None)
os.environ.pop("COURSE_PROFILE_OVERRIDES", None)
os.environ.setdefault("COURSE_PROFILE", "tiny")


@pytest.fixture(scope="session")
def tiny():
    """(model, tokenizer) of the shipped tiny model, on CPU, eval mode."""
    from course_lib.models import load_policy
    model, tok = load_policy(profile=__import__("course_lib.config", fromlist=["TINY"]).TINY, device="cpu")
    return model.eval(), tok


@pytest.fixture(scope="session")
def gpu_standins(tmp_path_factory):
    """Path of a directory with gpu-profile stand-ins; its overrides.json feeds
    COURSE_PROFILE=gpu COURSE_PROFILE_OVERRIDES=<dir>/overrides.json."""
    from course_lib.standins import make_gpu_standins
    d = tmp_path_factory.mktemp("gpu_standins")
    make_gpu_standins(d)
    return d


@pytest.fixture
def gpu_profile(gpu_standins, monkeypatch):
    """The gpu profile pointed at the stand-ins, for in-process tests."""
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    monkeypatch.setenv("COURSE_PROFILE_OVERRIDES", str(gpu_standins / "overrides.json"))
    from course_lib.config import get_profile
    return get_profile()


@pytest.fixture
def solutions_on():
    """Use the solutions for the duration of a test."""
    import course_lib
    course_lib.use_solutions(True)
    yield
    course_lib.use_solutions(False)

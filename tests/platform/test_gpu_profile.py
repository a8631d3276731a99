"""The gpu profile's T4 realities: no bfloat16 on a T4 (float16 is its mixed precision), batch
sizes capped by GPU memory per model, and the line every notebook's first cell prints."""

from __future__ import annotations

import pytest
import torch

from course_lib.core import config


def test_batch_sizes_fit_the_gpu_memory():
    assert config.max_batch_size("Qwen/Qwen2.5-0.5B-Instruct", 15) == 4  # a free Colab T4
    assert config.max_batch_size("Qwen/Qwen2.5-0.5B-Instruct", 7.5) == 2
    assert config.max_batch_size("Qwen/Qwen2.5-0.5B-Instruct", 80) == 16  # an A100 allows more
    assert config.max_batch_size("gpt2", 15) == 32 and config.max_batch_size("gpt2", 1) == 2
    assert config.max_batch_size("some/unknown-model", 15) is None
    with pytest.raises(ValueError, match="memory_gb"):
        config.max_batch_size("gpt2", 0)
    qwen = config.fit_to_memory(config.GPU.replace(policy_model="Qwen/Qwen2.5-0.5B-Instruct"), 15)
    assert {p.batch_size for p in qwen.presets.values()} == {4}
    assert [p.steps for p in qwen.presets.values()] == [p.steps for p in config.GPU.presets.values()]
    assert config.fit_to_memory(config.GPU, 15).presets == config.GPU.presets  # gpt2 fits as it is


def test_never_bf16_on_a_t4(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    t4 = config.precision(config.GPU, device="cuda")
    assert (t4["mixed"], t4["fp16"], t4["bf16"], t4["dtype"]) == ("float16", True, False, "float32")
    assert config.describe_precision(t4) == (
        "device cuda (Tesla T4) · dtype float32 · no bfloat16 on this GPU: mixed precision is float16"
    )
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    a100 = config.precision(config.GPU, device="cuda")
    assert (a100["mixed"], a100["fp16"], a100["bf16"]) == ("bfloat16", False, True)
    cpu = config.precision(config.TINY, device="cpu")
    assert cpu["mixed"] is None and not cpu["fp16"] and not cpu["bf16"]
    assert config.describe_precision(cpu) == "device cpu · dtype float32"


def test_setup_notebook_prints_device_and_dtype(capsys):
    import course_lib

    course_lib.setup_notebook(unit="01")
    out = capsys.readouterr().out
    assert "profile" in out and "device cpu · dtype float32" in out

"""Notebook 03 (SFT) executed headless with the solutions meets the unit's bars; the ours-vs-TRL
figure it shares with notebook 04 (course_lib.labs.speed)."""

from __future__ import annotations

import pytest


def test_ours_vs_trl_figure_draws_both_losses_and_every_speed_pair():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from course_lib.labs import speed as speed_lab

    ours = [{"step": i, "loss": 3.0 - 0.1 * i} for i in range(1, 6)]
    trl = [{"step": i, "loss": 3.2 - 0.1 * i} for i in range(1, 6)]
    result = {
        "ours": [0.02, 0.03],
        "trl": [0.025, 0.027],
        "ratio_median": 1.07,
        "ratio_min": 0.9,
        "ratio_max": 1.25,
    }
    fig = speed_lab.plot_ours_vs_trl(ours, trl, result, trl_label="TRL X", ylabel="loss", title="T")
    loss_ax, speed_ax = fig.axes
    assert [ln.get_label() for ln in loss_ax.lines] == ["our loop", "TRL X"]
    assert list(loss_ax.lines[1].get_ydata()) == [h["loss"] for h in trl]
    pairs = [list(ln.get_ydata()) for ln in speed_ax.lines]
    assert pairs == [[0.02, 0.025], [0.03, 0.027]]  # one line per back-to-back pair, ours -> TRL
    assert speed_ax.get_title() == "TRL / ours = 1.07 (0.90–1.25)" and speed_ax.get_ylim()[0] == 0
    assert fig._suptitle.get_text() == "T"
    plt.close(fig)


@pytest.mark.notebook
def test_sft_notebook_meets_the_bars(run_notebook, session_checkpoints):
    run = run_notebook("03")
    m = run.metrics
    fc = m["format_compliance"]
    assert fc["after"] >= 0.90, m  # >= 90 % format compliance after SFT
    assert fc["before"] < 0.6 and fc["after"] > fc["before"] + 0.3, m
    # the side by side measured both loops in the same run
    assert m["seconds_per_step_ours"]["after"] > 0 and m["seconds_per_step_trl"]["after"] > 0
    assert 0 <= m["format_compliance_all_tokens"]["after"] <= 1
    for fig in [
        "03_completion_mask",
        "03_per_token_loss",
        "03_sft_loss",
        "03_mask_vs_all_tokens",
        "03_ours_vs_trl",
    ]:
        assert f"{fig}.png" in run.figures, run.figures
    assert (session_checkpoints / "sft" / "config.json").exists()  # later units start from it


@pytest.mark.notebook
def test_sft_notebook_gpu_path_runs_on_standins(run_notebook):
    run = run_notebook("03", profile="gpu")
    assert "format_compliance" in run.metrics
    assert (run.dir / "ckpt" / "sft" / "config.json").exists()

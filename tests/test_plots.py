"""The plotting functions draw what their data says: lines, bars, labels and cells are counted."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nerqa_helpers import plots  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def history(steps=30, weights=False):
    """Alternating NER/QA steps, plus one evaluation row that the plots must ignore."""
    rows = []
    for step in range(1, steps + 1):
        task = "ner" if step % 2 else "qa"
        row = {"kind": "train", "step": step, "task": task, "loss": 3.0 / step, "lr": 1e-4 * (1 - step / steps)}
        if weights:
            row.update(weight_ner=1.0 + step / 100, weight_qa=1.0 - step / 100)
        rows.append(row)
    rows.append({"kind": "eval", "step": steps, "ner_f1": 50.0})
    return pd.DataFrame(rows)


def test_smooth_is_a_running_mean():
    assert plots.smooth([2, 4, 6, 8], 2).tolist() == [2, 3, 5, 7]
    assert plots.smooth([1, 2, 3], 1).tolist() == [1, 2, 3]


def test_task_mix_from_schedules_has_a_panel_per_strategy_and_a_line_per_task():
    schedules = {"round_robin": ["ner", "qa"] * 5, "proportional": ["ner"] * 7 + ["qa"] * 3}
    figure = plots.plot_task_mix(schedules)
    assert isinstance(figure, Figure)
    axes = figure.axes
    assert [ax.get_title() for ax in axes] == ["round_robin", "proportional"]
    assert all(len(ax.get_lines()) == 2 for ax in axes)
    ner_line = axes[1].get_lines()[0]
    assert ner_line.get_ydata()[-1] == 7  # cumulative NER batches at the last step


def test_task_mix_from_probabilities_draws_a_bar_per_strategy_and_task():
    mixes = {"proportional": {"ner": 0.8, "qa": 0.2}, "temperature": {"ner": 0.65, "qa": 0.35},
             "round_robin": {"ner": 0.5, "qa": 0.5}}
    figure = plots.plot_task_mix(mixes)
    (ax,) = figure.axes
    assert len(ax.patches) == 6
    assert [label.get_text() for label in ax.get_xticklabels()] == list(mixes)
    assert sorted(round(p.get_height(), 2) for p in ax.patches)[-1] == 0.8


def test_losses_one_smoothed_line_per_task_and_raw_lines_on_request():
    frame = history()
    assert len(plots.plot_losses(frame).axes[0].get_lines()) == 4
    (ax,) = plots.plot_losses(frame, show_raw=False).axes
    assert len(ax.get_lines()) == 2
    assert [t.get_text().split()[0] for t in ax.get_legend().get_texts()] == ["ner", "qa"]
    assert len(ax.get_lines()[0].get_xdata()) == 15  # only the NER steps, eval row dropped


def test_losses_refuse_an_empty_history():
    with pytest.raises(ValueError, match="no training steps"):
        plots.plot_losses(pd.DataFrame({"kind": ["eval"], "step": [1]}))


def test_learning_rate_draws_one_point_per_step():
    (ax,) = plots.plot_learning_rate(history(steps=20)).axes
    (line,) = ax.get_lines()
    assert len(line.get_xdata()) == 20


def test_task_weights_one_line_per_weight_column():
    (ax,) = plots.plot_task_weights(history(weights=True)).axes
    assert len(ax.get_lines()) == 2
    with pytest.raises(ValueError, match="weight_"):
        plots.plot_task_weights(history())


def test_gradient_conflict_image_is_layers_by_steps():
    frame = pd.DataFrame([{"step": step, "layer": f"layer {layer}", "cosine": np.cos(step + layer)}
                          for step in (10, 20, 30, 40) for layer in range(3)])
    figure = plots.plot_gradient_conflict(frame)
    image = figure.axes[0].get_images()[0]
    assert image.get_array().shape == (3, 4)
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["layer 0", "layer 1", "layer 2"]


def test_per_type_f1_has_a_bar_per_type_sorted_by_score():
    per_type = {"PER": {"f1": 90.0, "number": 10}, "LOC": {"f1": 70.0, "number": 5},
                "MISC": {"f1": 40.0, "number": 3}, "ORG": {"f1": 80.0, "number": 7}}
    (ax,) = plots.plot_per_type_f1(per_type).axes
    assert [round(p.get_height()) for p in ax.patches] == [90, 80, 70, 40]
    assert ax.get_xticklabels()[0].get_text().startswith("PER")


def test_entity_confusion_writes_every_cell():
    matrix = pd.DataFrame([[5, 1, 0], [2, 7, 1], [0, 0, 3]], index=["PER", "ORG", "none"],
                          columns=["PER", "ORG", "none"])
    (ax,) = plots.plot_entity_confusion(matrix).axes
    assert sorted(t.get_text() for t in ax.texts) == sorted(str(v) for v in matrix.to_numpy().ravel())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["PER", "ORG", "none"]


def test_length_histogram_bins_and_max_length_line():
    (ax,) = plots.plot_length_histogram({"ner": [5, 10, 12], "qa": [100, 200]}, max_length=128, bins=10).axes
    assert len(ax.patches) == 20  # 10 bins per series
    assert sum(p.get_height() for p in ax.patches) == 5
    assert ax.get_lines()[0].get_xdata()[0] == 128
    (ax,) = plots.plot_length_histogram([1, 2, 3], bins=3).axes
    assert len(ax.patches) == 3 and not ax.get_lines()


@pytest.mark.parametrize("shared, task_boxes", [(None, 0), (4, 4), (0, 12)])
def test_architecture_draws_a_box_per_layer(shared, task_boxes):
    (ax,) = plots.plot_architecture(num_layers=6, shared_layers=shared).axes
    texts = [t.get_text() for t in ax.texts if t.get_text()]  # arrows are empty annotations
    assert sum(text.startswith("shared layer") for text in texts) == (6 if shared is None else shared)
    assert sum(" layer " in text and not text.startswith("shared") for text in texts) == task_boxes
    assert len(ax.patches) == len(texts)


def test_live_loss_plot_records_every_task_loss():
    import torch

    live = plots.LiveLossPlot(every=2, window=2)
    for step in range(1, 6):
        live(step, {"ner" if step % 2 else "qa": torch.tensor(1.0 / step)})
    frame = live.frame()
    assert list(frame["step"]) == [1, 2, 3, 4, 5]
    assert frame.loc[frame["task"] == "qa", "loss"].tolist() == [0.5, 0.25]
    assert len(live.show().axes[0].get_lines()) == 4  # raw + smoothed line per task


def test_figures_stay_out_of_pyplot():
    plots.plot_learning_rate(history())
    assert plt.get_fignums() == []


# -- experiment reports -------------------------------------------------------------------------
def test_method_scores_draw_a_bar_per_scored_method_and_a_dot_per_seed():
    records = [{"method": "shared", "ner_f1": 80.0 + seed, "qa_f1": 50.0 + seed} for seed in range(3)]
    records += [{"method": "ner_alone", "ner_f1": 82.0 + seed, "qa_f1": None} for seed in range(2)]
    summary = pd.DataFrame({"method": ["ner_alone", "shared"], "ner_f1_mean": [82.5, 81.0],
                            "ner_f1_std": [0.7, 1.0], "qa_f1_mean": [np.nan, 51.0], "qa_f1_std": [np.nan, 1.0]})
    ner, qa = plots.plot_method_scores(records, summary).axes
    assert [round(bar.get_height(), 1) for bar in ner.patches] == [82.5, 81.0]
    assert [bar.get_height() for bar in qa.patches] == [51.0]  # the NER-only method has no QA bar
    assert [len(line.get_ydata()) for line in ner.get_lines() if line.get_marker() == "."] == [2, 3]
    assert [label.get_text() for label in qa.get_xticklabels()] == ["shared"]


def test_weight_curves_need_a_balancer_and_draw_a_line_per_task_and_seed():
    assert plots.plot_weight_curves([{"method": "shared", "seed": 0}]) is None
    curve = {"tasks": ["ner", "qa"], "curve": [[1, 1.2, 0.8], [9, 1.1, 0.9]]}
    (ax,) = plots.plot_weight_curves([{"method": "gradnorm", "seed": seed, "task_weights": curve}
                                      for seed in (0, 1)]).axes
    assert ax.get_title() == "gradnorm" and len(ax.get_lines()) == 4


def test_conflict_by_layer_has_a_line_per_method_and_the_whole_encoder_apart():
    assert plots.plot_conflict_by_layer(pd.DataFrame(columns=["method", "layer", "mean", "std"])) is None
    conflict = pd.DataFrame({"method": ["a"] * 3 + ["b"] * 2, "layer": ["layer 0", "layer 1", "all", "layer 0", "all"],
                             "mean": [0.1, -0.2, 0.0, 0.3, 0.2], "std": [0.01, np.nan, 0.02, 0.0, 0.0]})
    (ax,) = plots.plot_conflict_by_layer(conflict).axes
    assert [label.get_text() for label in ax.get_xticklabels()] == ["layer 0", "layer 1", "all shared"]
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["a", "b"]

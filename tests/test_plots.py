import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from course_lib import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_loss_curves_draws_one_labelled_line_per_curve():
    ax = plots.loss_curves({"train": [3.0, 2.0, 1.0], "val": [3.5, 2.5]}, steps={"val": [0, 2]}, log_y=True)
    assert [line.get_label() for line in ax.get_lines()] == ["train", "val"]
    assert list(ax.get_lines()[1].get_xdata()) == [0, 2]
    assert ax.get_yscale() == "log"
    with pytest.raises(ValueError, match="curve 'val': expected 2 steps, got 3"):
        plots.loss_curves({"val": [1.0, 2.0]}, steps={"val": [0, 1, 2]})


def test_heatmap_labels_its_axes():
    ax = plots.heatmap(torch.eye(3), x_labels=list("abc"), y_labels=list("xyz"), x_title="key", annotate=True)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert ax.get_xlabel() == "key"
    assert len(ax.texts) == 9
    with pytest.raises(ValueError, match=r"expected 2-D \(rows, cols\), got shape \(3,\)"):
        plots.heatmap(np.ones(3))
    with pytest.raises(ValueError, match="x_labels: expected 3 labels, got 2"):
        plots.heatmap(np.ones((2, 3)), x_labels=["a", "b"])


@pytest.mark.parametrize(
    ("cmap", "colours"),
    [("viridis", ["white", "black"]), ("magma_r", ["black", "white"]), ("Greys", ["black", "white"])],
)
def test_heatmap_annotations_contrast_with_their_cells(cmap, colours):
    # viridis runs dark -> light, magma_r and Greys light -> dark: the text must follow the cell
    ax = plots.heatmap(torch.tensor([[0.0, 1.0]]), cmap=cmap, annotate=True)
    assert [text.get_color() for text in ax.texts] == colours


def test_heatmap_annotations_take_a_format_and_a_size_and_skip_nan_cells():
    matrix = torch.tensor([[-0.0, float("nan")], [-0.0039, -3.5]])  # an ALiBi bias, future keys masked
    ax = plots.heatmap(matrix, annotate=True, fmt=".2g", fontsize=7)
    assert [text.get_text() for text in ax.texts] == ["0", "-0.0039", "-3.5"]
    assert {text.get_fontsize() for text in ax.texts} == {7}
    plt.close(ax.figure)


def test_decision_regions_colours_the_plane_by_prediction():
    X = np.array([[-1.0, 0.0], [1.0, 0.0]])
    y = np.array([0, 1])
    seen = []

    def predict(points):
        seen.append(points.shape)
        return (points[:, 0] > 0).astype(int)

    plots.decision_regions(predict, X, y, resolution=30)
    assert seen == [(900, 2)]
    with pytest.raises(ValueError, match=r"expected shape \(n, 2\)"):
        plots.decision_regions(predict, np.ones((3, 3)), y)


def test_course_style_is_applied():
    plots.use_course_style()
    assert matplotlib.rcParams["axes.spines.top"] is False


def test_heatmap_draws_bfloat16_and_boolean_tensors():
    for matrix in (torch.rand(3, 4).bfloat16(), torch.ones(3, 4, dtype=torch.bool).tril()):
        ax = plots.heatmap(matrix, annotate=True)
        assert ax.images[0].get_array().shape == (3, 4)
        plt.close(ax.figure)

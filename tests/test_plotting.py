"""reskernel.plotting.unlabelled_axes: which panels `save` warns about."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from reskernel.plotting import unlabelled_axes  # noqa: E402


def _figure(xlabel, bar_label):
    fig, (ax, cax) = plt.subplots(1, 2)
    image = ax.imshow([[0.0, 1.0], [2.0, 3.0]])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("y")
    fig.colorbar(image, cax=cax, label=bar_label)
    return fig


def test_labelled_panel_and_colour_bar_pass():
    fig = _figure("x", "accuracy")
    assert unlabelled_axes(fig) == []
    plt.close(fig)


def test_missing_panel_label_and_bar_label_are_named():
    fig = _figure("", "")
    assert unlabelled_axes(fig) == ["axes 0", "colour bar 1"]
    plt.close(fig)

"""The figures a researcher looks at: what each panel shows is checked against an independent computation, and every
figure carries a title, column and row titles and a labelled colour bar where colour carries a value."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pipeline.data.prepared import PreparedSplit
from pipeline.data.preview import COLUMNS, preview_figure
from pipeline.evaluation.figures import (
    adversarial_figure,
    cam_epochs_figure,
    curves_figure,
    gradcam_figure,
    heat_rows_figure,
    image_rows_figure,
)
from pipeline.evaluation.plotting import png


def titles(figure) -> tuple[str, list[str], list[str]]:
    """(suptitle, column titles of the first row, row titles of the first column) of a panel grid."""
    panels = [axis for axis in figure.axes if axis.get_label() != "<colorbar>"]
    first_row = [axis for axis in panels if axis.get_subplotspec().rowspan.start == 0]
    first_column = [axis for axis in panels if axis.get_subplotspec().colspan.start == 0]
    return (figure._suptitle.get_text(), [axis.get_title() for axis in first_row],
            [axis.get_ylabel() for axis in first_column])


def colour_bars(figure) -> list:
    return [axis for axis in figure.axes if axis.get_label() == "<colorbar>"]


def decodes(figure) -> tuple[int, int]:
    with Image.open(io.BytesIO(png(figure))) as image:
        image.load()
        return image.size


def test_adversarial_figure_shows_the_perturbation_on_plus_minus_eps():
    torch.manual_seed(0)
    clean = torch.rand(2, 3, 8, 8)
    eps = 8 / 255
    adversarial = (clean + eps * torch.sign(torch.randn_like(clean))).clamp(0, 1)
    figure = adversarial_figure(clean, adversarial, eps, ["row a", "row b"], "PGD")
    assert titles(figure) == ("PGD", ["clean", "adversarial", "perturbation δ"], ["row a", "row b"])
    delta_panel = [axis for axis in figure.axes if axis.get_title() == "perturbation δ"][0]
    shown = delta_panel.images[0]
    expected = ((adversarial[0].numpy() - clean[0].numpy()) * 255).mean(0)
    assert np.allclose(shown.get_array(), expected, atol=1e-4)
    assert shown.get_clim() == pytest.approx((-8, 8))
    (bar,) = colour_bars(figure)
    assert "/255" in bar.get_ylabel() and decodes(figure)[0] > 0


def test_gradcam_figure_scales_each_cam_to_its_maximum():
    images = torch.rand(1, 3, 4, 4)
    cam = torch.zeros(4, 4)
    cam[1:3, 1:3] = 5.0                                             # its own maximum 5 → 1 on the bar
    figure = gradcam_figure(images, cam[None], torch.zeros(1, 4, 4), ["attack failed"], "Grad-CAM")
    assert titles(figure) == ("Grad-CAM", ["image", "Grad-CAM, clean", "Grad-CAM, adversarial"], ["attack failed"])
    heat = [axis for axis in figure.axes if axis.get_title() == "Grad-CAM, clean"][0].images[1]
    assert heat.get_array().max() == pytest.approx(1.0) and heat.get_clim() == (0, 1)
    assert colour_bars(figure)[0].get_ylabel() == "Grad-CAM / its maximum"


def test_token_maps_are_shown_per_cell_on_one_scale():
    """A 2×2 token map over a 4×4 image: each token covers its own 2×2 block, the scale is [0, the largest value]."""
    image = torch.rand(3, 4, 4)
    maps = [torch.tensor([[0.1, 0.2], [0.3, 0.4]]), torch.tensor([[0.0, 0.8], [0.0, 0.0]])]
    figure = heat_rows_figure([(image, maps)], ["image", "layer 1", "layer 2"], ["clean"], "CLS", "CLS attention")
    layer_one = [axis for axis in figure.axes if axis.get_title() == "layer 1"][0].images[1]
    assert np.allclose(layer_one.get_array(), np.kron(maps[0].numpy(), np.ones((2, 2))))
    assert layer_one.get_clim() == pytest.approx((0, 0.8))
    assert colour_bars(figure)[0].get_ylabel() == "CLS attention"


def test_cam_epochs_and_image_rows_are_titled():
    image = torch.rand(3, 4, 4)
    figure = cam_epochs_figure(image, [torch.rand(2, 2), torch.rand(2, 2)], [5, 10], "epochs")
    assert titles(figure)[:2] == ("epochs", ["image", "epoch 5", "epoch 10"]) and colour_bars(figure)
    figure = image_rows_figure([[image, image]], ["clean", "ce"], ["true a"], "patched")
    assert titles(figure) == ("patched", ["clean", "ce"], ["true a"]) and decodes(figure)


def test_curves_figure_draws_every_series_with_its_label():
    figure = curves_figure({"adam": {"ce": [0.1, 0.2, 0.4], "kq": [0.3, 0.1, 0.0]}}, "patch updates", "attention", "t")
    (axis,) = figure.axes
    assert [line.get_label() for line in axis.lines] == ["ce", "kq"]
    assert list(axis.lines[0].get_ydata()) == [0.1, 0.2, 0.4] and list(axis.lines[0].get_xdata()) == [0, 1, 2]
    assert (axis.get_title(), axis.get_xlabel(), axis.get_ylabel()) == ("adam", "patch updates", "attention")


def test_mask_preview_titles_rows_with_their_classes():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 6, 6, 3), dtype=np.uint8)
    masks = np.zeros((3, 6, 6), np.uint8)
    masks[:, 2:4, 2:4] = 1
    split = PreparedSplit(images, masks, np.array([2, 0, 1]), [{}] * 3, ["stop", "yield", "limit"], [])
    figure = preview_figure(split, 1 - masks, 3, "preview")
    assert titles(figure) == ("preview", COLUMNS, ["limit", "stop", "yield"])
    masked = [axis for axis in figure.axes if axis.get_title() == COLUMNS[2]][0].images[0]
    assert np.allclose(masked.get_array(), images[0] * masks[0][..., None] / 255)

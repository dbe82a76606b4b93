"""Row names map to the right LCNet kwargs and train-config overrides."""

import pytest

from lcnet_fast.config import RunConfig, apply_overrides
from lcnet_fast.engine.model import model_config_from
from lcnet_fast.experiments.rows import GROUPS, PAPER, expand_rows, parse_row


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("d1_c1", dict(num_layers=1, crop_level=1, use_graph=True, mirror_inputs=False)),
        ("d6_c3", dict(num_layers=6, crop_level=3, use_graph=True, mirror_inputs=False)),
        ("d4_c1_nograph", dict(num_layers=4, crop_level=1, use_graph=False, mirror_inputs=False)),
        ("d2_c1_mirror", dict(num_layers=2, crop_level=1, use_graph=True, mirror_inputs=True)),
        (
            "d2_c2_nograph_mirror",
            dict(num_layers=2, crop_level=2, use_graph=False, mirror_inputs=True),
        ),
    ],
)
def test_row_model_kwargs(name, kwargs):
    assert parse_row(name).model_kwargs() == kwargs


def test_row_reaches_the_model_config():
    """The overrides go through the train config system into the LCNet constructor arguments;
    crop level keeps the view size M and makes the synthetic scene k*M px (the paper's scheme)."""
    row = parse_row("d4_c3_nograph")
    cfg = apply_overrides(RunConfig(), row.overrides(view_size=64, dataset="synthetic")).validate()
    model = model_config_from(cfg.model, 10, 10)
    assert (model["num_layers"], model["crop_level"], model["image_size"]) == (4, 3, 64)
    assert model["use_graph"] is False and model["mirror_inputs"] is False
    assert cfg.data.synthetic_image_size == 192
    # other datasets: no synthetic key
    assert "data.synthetic_image_size" not in row.overrides(view_size=448, dataset="voc")


def test_groups_and_duplicates():
    rows = expand_rows("table4,table7")
    # d1_c1 is in both tables and runs once
    assert [r.name for r in rows] == ["d1_c1", "d2_c1", "d4_c1", "d6_c1", "d1_c2", "d1_c3", "d1_c4"]
    assert [r.depth for r in expand_rows("table5")] == [1, 2, 4, 6]
    assert not any(r.use_graph for r in expand_rows("table5"))
    assert all(r.mirror_inputs for r in expand_rows("table6"))
    for names in GROUPS.values():
        for name in names:
            assert name in PAPER, name


@pytest.mark.parametrize("bad", ["d0_c1", "d2", "c1_d2", "d2_c1_graph", "d2_c1_mirror_mirror", ""])
def test_bad_rows_raise(bad):
    with pytest.raises(ValueError):
        expand_rows(bad)

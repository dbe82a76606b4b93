"""lcnet_fast.metrics against hand-computed cases and a literal transcription of the definitions."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lcnet_fast.metrics import average_precision, multilabel_metrics


def ap_by_definition(scores, targets):
    """AP = sum over distinct thresholds t (high to low) of (R(t) - R(previous t)) * P(t), in plain
    Python."""
    pairs = [(float(s), int(y)) for s, y in zip(scores, targets, strict=True) if int(y) != -1]
    n_pos = sum(1 for _, y in pairs if y == 1)
    if n_pos == 0:
        return float("nan")
    total, previous_recall = 0.0, 0.0
    for thr in sorted({s for s, _ in pairs}, reverse=True):
        selected = [y for s, y in pairs if s >= thr]
        hits = sum(1 for y in selected if y == 1)
        recall = hits / n_pos
        total += (recall - previous_recall) * (hits / len(selected))
        previous_recall = recall
    return total


def test_ap_hand_computed_no_ties():
    # ranking: + - + -  -> precision at the hits: 1/1, 2/3 -> AP = (1 + 2/3) / 2
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)


def test_ap_hand_computed_with_ties():
    # scores 0.9 (+), 0.5 (+), 0.5 (-), 0.1 (+). Thresholds: 0.9 -> P=1, R=1/3; 0.5 -> P=2/3, R=2/3;
    # 0.1 -> P=3/4, R=1.  AP = 1/3*1 + 1/3*2/3 + 1/3*3/4.  (Ranking the tie + before - would give
    # 1/3*(1 + 1 + 3/4), - before + would give 1/3*(1 + 2/3 + 3/4): the grouped value is neither.)
    expected = (1 + 2 / 3 + 3 / 4) / 3
    assert average_precision([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 1]) == pytest.approx(expected)
    assert average_precision([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 1]) == pytest.approx(expected)
    # all tied: a single threshold, AP = prevalence
    assert average_precision([0.3] * 5, [1, 0, 0, 1, 0]) == pytest.approx(2 / 5)


def test_ap_ignores_minus_one():
    with_ignored = average_precision([0.9, 0.95, 0.8, 0.7, 0.1], [1, -1, 0, 1, 0])
    without = average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0])
    assert with_ignored == pytest.approx(without)
    assert math.isnan(average_precision([0.9, 0.1], [-1, 0]))


def test_map_excludes_classes_without_positive_and_reports_them():
    scores = np.array([[0.9, 0.2, 0.4], [0.1, 0.8, 0.3], [0.6, 0.3, 0.9]])
    targets = np.array([[1, 0, -1], [0, 1, 0], [1, 0, 0]])
    m = multilabel_metrics(scores, targets)
    assert m["classes_without_positive"] == [2]
    assert math.isnan(m["AP"][2])
    assert m["mAP"] == pytest.approx(100.0)
    assert m["AP_std"] == pytest.approx(0.0)


def test_ap_std_is_spread_of_per_class_ap():
    scores = np.array([[0.9, 0.9], [0.8, 0.8], [0.7, 0.7], [0.1, 0.1]])
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    m = multilabel_metrics(scores, targets)
    aps = [100 * ap_by_definition(scores[:, j], targets[:, j]) for j in range(2)]
    assert m["AP"] == pytest.approx(aps)
    assert m["mAP"] == pytest.approx(np.mean(aps))
    assert m["AP_std"] == pytest.approx(np.std(aps))
    assert m["AP_std"] > 0


def test_cf1_is_harmonic_mean_of_cp_cr_not_mean_f1():
    # class 0: predicted on both images, 1 positive -> P=1/2, R=1, F1=2/3
    # class 1: predicted on image 0 only, positive on both -> P=1, R=1/2, F1=2/3
    scores = np.array([[0.9, 0.9], [0.9, 0.1]])
    targets = np.array([[1, 1], [0, 1]])
    m = multilabel_metrics(scores, targets)
    cp, cr = 0.75, 0.75
    assert m["CP"] == pytest.approx(100 * cp)
    assert m["CR"] == pytest.approx(100 * cr)
    assert m["CF1"] == pytest.approx(
        100 * 2 * cp * cr / (cp + cr)
    )  # 75, while mean per-class F1 is 66.7
    assert abs(m["CF1"] - 100 * 2 / 3) > 1


def test_overall_metrics_and_minus_one_counts_as_negative():
    scores = np.array([[0.9, 0.6], [0.7, 0.2]])
    targets = np.array([[1, -1], [0, 1]])
    m = multilabel_metrics(scores, targets)
    # predictions: (0,0) TP, (0,1) predicted on an ignored target -> false positive,
    # (1,0) FP, (1,1) FN
    assert m["OP"] == pytest.approx(100 * 1 / 3)
    assert m["OR"] == pytest.approx(100 * 1 / 2)
    assert m["OF1"] == pytest.approx(100 * 2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))


def test_zero_division_conventions():
    # class 1 never predicted -> precision 0; class 2 has no positive -> recall 0;
    # both stay in the mean
    scores = np.array([[0.9, 0.1, 0.8], [0.2, 0.3, 0.1]])
    targets = np.array([[1, 1, 0], [0, 0, 0]])
    m = multilabel_metrics(scores, targets)
    assert m["CP"] == pytest.approx(100 * (1 + 0 + 0) / 3)
    assert m["CR"] == pytest.approx(100 * (1 + 0 + 0) / 3)
    nothing = multilabel_metrics(np.zeros((2, 2)), np.array([[1, 0], [0, 1]]))
    assert nothing["CP"] == nothing["OP"] == nothing["OF1"] == nothing["CF1"] == 0.0


def test_top3_keeps_three_highest_that_pass_threshold():
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.1], [0.3, 0.2, 0.95, 0.1, 0.05]])
    targets = np.array([[0, 0, 0, 1, 0], [0, 0, 1, 0, 0]])
    m = multilabel_metrics(scores, targets)
    # image 0: top3 = classes 0,1,2 (all FP; class 3 is 4th); image 1: only class 2 passes 0.5 -> TP
    assert m["OP_top3"] == pytest.approx(100 * 1 / 4)
    assert m["OR_top3"] == pytest.approx(100 * 1 / 2)
    # without the top-3 cut, class 3 on image 0 is a TP
    assert m["OP"] == pytest.approx(100 * 2 / 5)
    assert m["OR"] == pytest.approx(100.0)
    assert m["CR_top3"] == pytest.approx(100 * 1 / 5)


def test_accepts_torch_and_numpy_equally():
    rng = np.random.default_rng(0)
    s = rng.random((20, 4))
    t = (rng.random((20, 4)) < 0.4).astype(np.int64)
    a = multilabel_metrics(s, t)
    b = multilabel_metrics(torch.tensor(s, dtype=torch.float32), torch.tensor(t, dtype=torch.int8))
    for key in ("mAP", "CF1", "OF1", "OF1_top3"):
        assert a[key] == pytest.approx(b[key], abs=1e-4)
    assert set(a) >= {
        "mAP",
        "CP",
        "CR",
        "CF1",
        "OP",
        "OR",
        "OF1",
        "CP_top3",
        "CR_top3",
        "CF1_top3",
        "OP_top3",
        "OR_top3",
        "OF1_top3",
        "AP",
        "AP_std",
        "classes_without_positive",
    }


@pytest.mark.parametrize(
    "scores, targets, match",
    [
        (np.zeros(4), np.zeros(4), "scores must have shape"),
        (np.zeros((2, 3)), np.zeros((3, 2)), "targets must have the same shape"),
        (np.zeros((0, 3)), np.zeros((0, 3)), "at least one image"),
        (np.array([[0.5, np.nan]]), np.zeros((1, 2)), "NaN"),
        (np.zeros((1, 2)), np.array([[2, 0]]), "targets must be 1, 0 or -1"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        multilabel_metrics(scores, targets)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]), st.sampled_from([1, 0, -1])
        ),
        min_size=1,
        max_size=30,
    )
)
def test_ap_matches_definition_fuzz(rows):
    # a coarse score grid makes ties frequent, which is where implementations differ
    scores, targets = zip(*rows, strict=True)
    got, want = average_precision(scores, targets), ap_by_definition(scores, targets)
    if math.isnan(want):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(want, abs=1e-12)

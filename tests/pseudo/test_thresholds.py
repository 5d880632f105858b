import numpy as np
import pytest
import torch

from symda.pseudo import StreamingClassHistogram, class_thresholds, global_thresholds, select


def hand_case() -> tuple[torch.Tensor, torch.Tensor]:
    """1x3x2x2 probabilities -> pred [[0, 1], [1, 2]], M_prob [[0.9, 0.6], [0.8, 0.5]]."""
    p = torch.tensor(
        [
            [[0.9, 0.2], [0.1, 0.3]],  # class 0
            [[0.05, 0.6], [0.8, 0.2]],  # class 1
            [[0.05, 0.2], [0.1, 0.5]],  # class 2
        ]
    )[None]
    return p.argmax(dim=1), p.max(dim=1).values


def test_global_threshold_hand_case():
    pred, m = hand_case()
    assert pred.tolist() == [[[0, 1], [1, 2]]]
    out = select(pred, m, global_thresholds(0.7, 3))
    assert out.dtype == torch.uint8
    assert out.tolist() == [[[0, 255], [1, 255]]]
    assert select(pred, m, global_thresholds(0.6, 3)).tolist() == [[[0, 1], [1, 255]]]  # >= keeps 0.6


def test_class_threshold_hand_case():
    pred, m = hand_case()
    hist = StreamingClassHistogram(num_classes=4, bins=100)
    hist.update(pred, m)
    th = class_thresholds(hist, quantile=0.5, cap=0.7)
    # class 0: only 0.9 -> capped at 0.7; class 1: median of {0.6, 0.8} ~ 0.7 -> cap 0.7;
    # class 2: only 0.5 -> ~0.505 (bin centre); class 3 never predicted -> cap.
    assert th[0] == pytest.approx(0.7) and th[1] == pytest.approx(0.7) and th[3] == pytest.approx(0.7)
    assert 0.5 <= float(th[2]) <= 0.51
    assert select(pred, m, th).tolist() == [[[0, 255], [1, 255]]]
    th = class_thresholds(hist, quantile=0.0, cap=0.9)  # lowest value of each class: all kept
    assert select(pred, m, th - 0.01).tolist() == [[[0, 1], [1, 2]]]
    manual = torch.tensor([0.95, 0.7, 0.4])
    assert select(pred, m, manual).tolist() == [[[255, 255], [1, 2]]]


def test_streaming_quantile_matches_numpy():
    rng = np.random.default_rng(0)
    c, bins = 5, 200
    hist = StreamingClassHistogram(c, bins)
    preds, confs = [], []
    for _ in range(4):
        pred = rng.integers(0, c - 1, size=(2, 16, 16))  # class c-1 is never predicted
        conf = rng.beta(2 + pred, 2, size=pred.shape).astype(np.float32)  # a different shape per class
        hist.update(torch.from_numpy(pred), torch.from_numpy(conf))
        preds.append(pred.ravel())
        confs.append(conf.ravel())
    pred, conf = np.concatenate(preds), np.concatenate(confs)
    assert hist.counts().sum() == pred.size
    assert hist.class_totals().tolist() == np.bincount(pred, minlength=c).tolist()
    for q in (0.0, 0.1, 0.5, 0.9, 1.0):
        est = hist.quantile(q).numpy()
        for k in range(c - 1):
            assert abs(est[k] - np.quantile(conf[pred == k], q)) <= 1.0 / bins, (q, k)
        assert np.isnan(est[c - 1])


def test_histogram_memory_does_not_grow():
    hist = StreamingClassHistogram(19, 1000)
    before = hist.nbytes()
    for _ in range(20):
        hist.update(torch.randint(0, 19, (2, 32, 32)), torch.rand(2, 32, 32))
    assert hist.nbytes() == before == 19 * 1000 * 8
    assert hist.counts().dtype == torch.int64
    assert int(hist.counts().sum()) == 20 * 2 * 32 * 32


def test_histogram_edges():
    hist = StreamingClassHistogram(2, 10)
    hist.update(torch.tensor([0, 0, 255, 1]), torch.tensor([1.0, 0.0, 0.5, float("nan")]))
    counts = hist.counts()
    assert (
        counts[0, 9] == 1 and counts[0, 0] == 1 and counts.sum() == 2
    )  # 1.0 in the last bin; 255 and NaN skipped

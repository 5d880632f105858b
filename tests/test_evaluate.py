import numpy as np
import pytest
import torch
from PIL import Image

from symda.data.labels import IGNORE_INDEX, NUM_CLASSES, train_ids_to_label_ids
from symda.evaluate import confusion_matrix, scores_from_confusion, write_prediction


def test_confusion_and_iou_by_hand():
    label = np.array([[0, 0, 1, 255]])
    pred = np.array([[0, 1, 1, 2]])
    conf = confusion_matrix(pred, label)
    assert conf.sum() == 3  # the ignored pixel is not counted, whatever was predicted there
    s = scores_from_confusion(conf)
    assert s.per_class["road"] == pytest.approx(50.0)  # tp 1, fn 1
    assert s.per_class["sidewalk"] == pytest.approx(50.0)  # tp 1, fp 1
    assert np.isnan(s.per_class["building"])  # predicted only on an ignored pixel: absent
    assert s.miou == pytest.approx(50.0)


def test_protocols_average_their_own_classes():
    conf = np.eye(NUM_CLASSES, dtype=np.int64)
    conf[9, 9] = 0  # terrain missed entirely...
    conf[9, 0] = 1  # ...predicted as road
    assert scores_from_confusion(conf, 16).miou > scores_from_confusion(conf, 19).miou
    assert len(scores_from_confusion(conf, 13).per_class) == 13


def _random_maps(rng, n, h=24, w=40):
    labels, preds = [], []
    for _ in range(n):
        lab = rng.integers(0, NUM_CLASSES, size=(h // 4, w // 4)).repeat(4, 0).repeat(4, 1).astype(np.uint8)
        lab[rng.random((h, w)) < 0.05] = IGNORE_INDEX
        pred = lab.copy()
        pred[rng.random((h, w)) < 0.3] = rng.integers(0, NUM_CLASSES)
        pred[pred == IGNORE_INDEX] = 0
        labels.append(lab)
        preds.append(pred)
    return labels, preds


def test_agrees_with_official_cityscapes_evaluation(tmp_path):
    """Predictions written by symda, scored by cityscapesscripts, equal our mIoU within 0.01."""
    from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as official

    rng = np.random.default_rng(0)
    labels, preds = _random_maps(rng, 6)
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    gt_files, pred_files = [], []
    for i, (lab, pred) in enumerate(zip(labels, preds, strict=True)):
        name = f"town/town_{i:06d}_000019_leftImg8bit.png"
        gt = tmp_path / "gtFine" / "val" / name.replace("_leftImg8bit", "_gtFine_labelIds")
        gt.parent.mkdir(parents=True, exist_ok=True)
        # ignored pixels become labelId 0 ('unlabeled'), which the official evaluation ignores too
        Image.fromarray(train_ids_to_label_ids(lab)).save(gt)
        pred_files.append(str(write_prediction(tmp_path / "pred", name, pred)))
        gt_files.append(str(gt))
        conf += confusion_matrix(pred, lab)
    ours = scores_from_confusion(conf)

    args = official.args
    args.evalInstLevelScore, args.quiet, args.JSONOutput = False, True, False
    result = official.evaluateImgLists(pred_files, gt_files, args)
    theirs = result["averageScoreClasses"] * 100
    assert ours.miou == pytest.approx(theirs, abs=0.01)
    for name, iou in ours.per_class.items():
        assert iou == pytest.approx(result["classScores"][name] * 100, abs=0.01, nan_ok=True)


def test_evaluate_upsamples_to_label_resolution(tiny_data):
    from symda.config import DataConfig, SynthCityConfig
    from symda.data import build_dataset
    from symda.evaluate import evaluate

    cfg = DataConfig(source_root=str(tiny_data["source"]), target_root=str(tiny_data["target"]),
                     target_size=(8, 16))  # fmt: skip
    val = build_dataset(cfg, SynthCityConfig(), "val")
    seen = []

    def perfect(images, indices):  # one-hot of the true label at the 8x16 input resolution
        seen.append(images.shape)
        labels = torch.stack([val[i]["label"] for i in indices]).clamp(max=NUM_CLASSES - 1)
        return torch.nn.functional.one_hot(labels, NUM_CLASSES).permute(0, 3, 1, 2).float()

    scores = evaluate(perfect, val, batch_size=3)
    assert seen[0] == (3, 3, 8, 16)
    assert 0 < scores.miou < 100  # nearest-downsampled labels upsampled again lose thin structures


def test_one_pass_evaluation_equals_three_passes(tiny_data, tmp_path):
    """evaluate_pair (F_T, fusion and validators in one pass) gives exactly the numbers of evaluate on
    each ProbabilityFn and of unsupervised_scores, and writes the fused predictions."""
    from symda.config import DataConfig, SynthCityConfig
    from symda.data import build_dataset
    from symda.evaluate import evaluate, evaluate_pair, unsupervised_scores

    cfg = DataConfig(source_root=str(tiny_data["source"]), target_root=str(tiny_data["target"]),
                     target_size=(8, 16))  # fmt: skip
    val = build_dataset(cfg, SynthCityConfig(), "val")

    def probs(images, indices, salt):  # a fixed random map per (image, network)
        maps = [
            torch.rand(NUM_CLASSES, 8, 16, generator=torch.Generator().manual_seed(i * 2 + salt))
            for i in indices
        ]
        return torch.softmax(torch.stack(maps) * 4, dim=1)

    def pair(images, indices):
        return probs(images, indices, 0), probs(images, indices, 1)

    def fused(images, indices):
        p_t, p_s = pair(images, indices)
        return 0.3 * p_t + 0.7 * p_s

    both = evaluate_pair(pair, val, 0.3, batch_size=3, save_predictions=tmp_path / "preds")
    single = evaluate(lambda x, i: probs(x, i, 0), val, batch_size=3)
    assert both.single.miou == single.miou and both.single.per_class == single.per_class
    assert both.fused.miou == evaluate(fused, val, batch_size=3).miou != single.miou
    assert both.validators == unsupervised_scores(pair, val, batch_size=3)
    assert 0 < both.validators["agreement"] < 1
    assert len(list((tmp_path / "preds").rglob("*_leftImg8bit.png"))) == len(val)
    alone = evaluate_pair(lambda x, i: (probs(x, i, 0), None), val, 0.3, batch_size=3)
    assert alone.fused is None and alone.single.miou == single.miou
    assert np.isnan(alone.validators["agreement"])
    assert both.single.miou_se == single.miou_se and 0 < single.miou_se < 100  # 4 images, seeded


def test_bootstrap_se_matches_the_scores_and_shrinks_with_agreeing_images():
    from symda.evaluate import bootstrap_miou_se, miou_of_confusions

    rng = np.random.default_rng(0)
    per_image = np.stack([
        confusion_matrix(rng.integers(0, 4, (8, 8)), rng.integers(0, 5, (8, 8))) for _ in range(30)
    ])  # fmt: skip
    for protocol in (19, 16, 13):
        assert miou_of_confusions(per_image, protocol) == pytest.approx(
            [scores_from_confusion(c, protocol).miou for c in per_image], nan_ok=True
        )
    se = bootstrap_miou_se(per_image)
    assert se > 0 and se == bootstrap_miou_se(per_image)  # seeded
    same = np.stack([per_image[0]] * 30)
    assert bootstrap_miou_se(same) == pytest.approx(0.0, abs=1e-9)  # identical images: no noise
    assert np.isnan(bootstrap_miou_se(per_image[:1]))

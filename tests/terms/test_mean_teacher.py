"""The mean-teacher term (DACS): ClassMix masks, the teacher as the segmenter's moving average, a
resumed run equal to a straight one, and no target label read."""

from __future__ import annotations

import copy

import pytest
import torch

from symda.adapt.loop import SegmenterJob, train_segmenter
from symda.adapt.step import TermContext
from symda.distributed import Runtime
from symda.terms.cross_entropy import SourceCrossEntropy
from symda.terms.mean_teacher import MeanTeacher, MeanTeacherConfig, classmix_masks
from tests.adapt.test_loop import Stop, setup, stopping_at


def test_classmix_takes_half_the_classes_of_each_source_label():
    labels = torch.tensor([[[0, 0, 1, 1], [2, 2, 3, 255]], [[5, 5, 5, 5], [5, 5, 5, 5]]])
    masks = classmix_masks(labels, torch.Generator().manual_seed(0), 255)
    first = labels[0][masks[0]].unique().tolist()
    assert len(first) == 2 and set(first) <= {0, 1, 2, 3}  # 2 of its 4 classes, every pixel of them
    assert torch.equal(masks[0], torch.isin(labels[0], torch.tensor(first)))
    assert masks[1].all()  # one class: rounded up, the whole image
    again = classmix_masks(labels, torch.Generator().manual_seed(0), 255)
    assert torch.equal(masks, again)


def test_the_teacher_starts_as_the_segmenter_and_follows_its_moving_average():
    torch.manual_seed(0)
    student = torch.nn.Linear(3, 2)
    term = MeanTeacher(MeanTeacherConfig(lambda_main=1.0, alpha=0.5))
    term.setup(TermContext(Runtime(), 0, 19, ("main",), student))
    before = copy.deepcopy(term.teacher.state_dict())
    with torch.no_grad():
        student.weight.add_(1.0)
    term._update_teacher()  # t = 0: alpha_t = 0, the teacher becomes the segmenter
    torch.testing.assert_close(term.teacher.weight, student.weight)
    assert not torch.equal(before["weight"], term.teacher.weight)
    with torch.no_grad():
        student.weight.add_(2.0)
    term._update_teacher()  # t = 1: alpha_t = min(1/2, 0.5)
    torch.testing.assert_close(term.teacher.weight, student.weight - 1.0)
    assert not term.teacher.weight.requires_grad


@pytest.mark.parametrize("mix", ["classmix", "none"])
def test_a_resumed_mean_teacher_run_matches_the_straight_run_and_reads_no_target_label(
    tiny_data, tmp_path, mix
):
    cfg, model, data = setup(tiny_data, tmp_path, steps=4, checkpoint_every=2)
    init = copy.deepcopy(model.state_dict())
    streams = {"source": data["source"], "target": data["target"]}  # the target role has no labels
    assert "label" not in data["target"][0]

    def run(out, report, resume=False):
        term = MeanTeacher(MeanTeacherConfig(lambda_main=1.0, mix=mix))
        job = SegmenterJob(cfg, streams, (SourceCrossEntropy(), term), out, resume=resume)
        train_segmenter(job, model, report)

    reports = []
    run(tmp_path / "a", lambda m, checkpoint=None: reports.append(m))
    assert {"loss_mt", "mt_weight"} <= set(reports[0]) and 0 <= reports[0]["mt_weight"] <= 1

    model.load_state_dict(init)
    with pytest.raises(Stop):
        run(tmp_path / "c", stopping_at(3))  # the log at step 4 comes after checkpoint 2
    model.load_state_dict(init)
    run(tmp_path / "c", lambda *a, **k: None, resume=True)
    a, c = (torch.load(tmp_path / x / "checkpoint.pt", weights_only=True) for x in "ac")
    assert (
        c["step"] == 4 and a["terms"]["MeanTeacher"]["updates"] == c["terms"]["MeanTeacher"]["updates"] == 4
    )
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], c["model"][k], atol=1e-5, rtol=0)
    for k, v in a["terms"]["MeanTeacher"]["teacher"].items():
        torch.testing.assert_close(v, c["terms"]["MeanTeacher"]["teacher"][k], atol=1e-5, rtol=0)


def test_the_mean_teachers_section_is_checked():
    from symda.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"adapt\.mean_teacher\.mix: 'cutmix' is not one of"):
        load_config(overrides={"adapt.mean_teacher.mix": "cutmix"})
    with pytest.raises(ConfigError, match=r"adapt\.mean_teacher\.alpha: must be in \[0, 1\]"):
        load_config(overrides={"adapt.mean_teacher.alpha": 1.5})


def test_with_classmix_alone_the_segmenter_does_not_run_on_the_target_batch(tiny_data, tmp_path, monkeypatch):
    """The term reads the target batch (its `batches`), not the segmenter's outputs on it: no pass runs
    on that stream unless another term uses it."""
    from symda.adapt.step import Step

    cfg, model, data = setup(tiny_data, tmp_path, steps=2)
    passes = []
    forward = Step.forward
    monkeypatch.setattr(
        Step, "forward", lambda self, m, stream: (passes.append(stream), forward(self, m, stream))
    )
    term = MeanTeacher(MeanTeacherConfig(lambda_main=1.0))
    job = SegmenterJob(cfg, {"source": data["source"], "target": data["target"]}, (SourceCrossEntropy(), term),
                       tmp_path / "run")  # fmt: skip
    assert job.streams == ("source", "target")  # its batches are loaded
    train_segmenter(job, model, lambda *a, **k: None)
    assert set(passes) == {"source"}

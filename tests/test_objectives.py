"""Objectives on hand-made tensors with values computed by hand (math.log / math.exp on known cosines)."""

from __future__ import annotations

import math

import pytest
import torch

from xltune.errors import XLTuneError
from xltune.objectives import OBJECTIVES, cross_entropy, distillation, label_contrast, translation_contrast

E1 = [1.0, 0.0]
E2 = [0.0, 1.0]
R2 = 1 / math.sqrt(2)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.nn.functional.cosine_similarity(a, b, dim=0).item()


def _finite_and_backward(loss: torch.Tensor, *leaves: torch.Tensor) -> None:
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for leaf in leaves:
        assert leaf.grad is not None and torch.isfinite(leaf.grad).all()


# ---------------------------------------------------------------- registry


def test_all_objectives_registered_and_typo_names_closest():
    assert set(OBJECTIVES.names()) >= {"cross_entropy", "translation_contrast", "label_contrast", "distillation",
                                       "projected_cross_entropy"}
    assert OBJECTIVES.get("label_contrast").objective.__module__ == label_contrast.__module__
    with pytest.raises(XLTuneError, match="valid: label_contrast"):
        OBJECTIVES.get("label_contrats")


REQUIRED = {"distillation": {"teacher": "RUN", "text": {"de": "de.txt"}}}  # settings an objective cannot default


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_every_objective_is_in_the_stored_tag_and_round_trips(name):
    """The stored objective tag is derived from the list: a new objective can never be stored as 'none' (and pooled
    with plain cross-entropy); its settings survive a config round trip."""
    from xltune.config import load_config
    from xltune.objectives.base import objective_tag

    spec = OBJECTIVES.get(name)
    assert spec.description and spec.tag
    assert len({OBJECTIVES.get(n).tag for n in OBJECTIVES.names()}) == len(OBJECTIVES.names())  # tags are unique
    entry = {"name": name, "weight": 0.5, **REQUIRED.get(name, {})}
    listed = [entry] if name == "cross_entropy" else [{"name": "cross_entropy"}, entry]
    cfg = load_config(None, ["model.name_or_path=m"], base={"objectives": listed})
    assert type(cfg.objectives[-1]) is spec.settings
    tag = objective_tag(cfg.objectives)
    assert any(part.startswith(spec.tag) for part in tag.split("+")) and cfg.objective_tag == tag != "none"
    again = load_config(None, base=cfg.to_dict())
    assert again.objectives == cfg.objectives and again.run_key(1) == cfg.run_key(1)


# ---------------------------------------------------------------- cross-entropy


def test_cross_entropy_sequence_value():
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    labels = torch.tensor([2, 0])
    expected = (-math.log(math.exp(3) / (math.exp(1) + math.exp(2) + math.exp(3))) + math.log(3)) / 2
    assert cross_entropy(logits, labels).item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_token_ignores_positions():
    logits = torch.tensor([[[2.0, 0.0], [50.0, -50.0]]])  # second position would cost ~100 if counted
    labels = torch.tensor([[0, -100]])
    assert cross_entropy(logits, labels).item() == pytest.approx(math.log(1 + math.exp(-2)), rel=1e-6)


def test_cross_entropy_all_ignored_is_zero_with_graph():
    logits = torch.randn(2, 3, 4, requires_grad=True)
    loss = cross_entropy(logits, torch.full((2, 3), -100))
    assert loss.item() == 0.0
    _finite_and_backward(loss, logits)


def test_cross_entropy_bf16_in_float32_out():
    logits = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.bfloat16)
    loss = cross_entropy(logits, torch.tensor([0]))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(-math.log(math.exp(1) / (math.exp(1) + math.exp(2) + math.exp(3))), rel=1e-5)


# ---------------------------------------------------------------- translation contrast


def test_translation_contrast_orthogonal_pairs_value():
    src = torch.tensor([E1, E2])
    tgt = torch.tensor([[3.0, 0.0], [0.0, 0.5]])  # same directions, other norms: cosine ignores the norm
    # s_ii = 1/T = 2, s_ij = 0 in both directions.
    expected = -math.log(math.exp(2) / (math.exp(2) + math.exp(0)))
    assert translation_contrast(src, tgt, temperature=0.5).item() == pytest.approx(expected, rel=1e-6)


def test_translation_contrast_asymmetric_sims_value():
    src = torch.tensor([E1, E2])
    tgt = torch.tensor([E1, [1.0, 1.0]])  # cos: [[1, 1/sqrt2], [0, 1/sqrt2]]
    t = 0.5
    s = [[1 / t, R2 / t], [0.0, R2 / t]]
    lse = lambda xs: math.log(sum(math.exp(x) for x in xs))  # noqa: E731
    src_to_tgt = [-(s[i][i] - lse(s[i])) for i in range(2)]
    tgt_to_src = [-(s[i][i] - lse([s[0][i], s[1][i]])) for i in range(2)]
    expected = (sum(src_to_tgt) + sum(tgt_to_src)) / 4
    assert translation_contrast(src, tgt, temperature=t).item() == pytest.approx(expected, rel=1e-6)


def test_translation_contrast_is_symmetric():
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    assert translation_contrast(src, tgt).item() == pytest.approx(translation_contrast(tgt, src).item(), rel=1e-6)


def test_translation_contrast_gradient_step_pulls_pairs_together():
    g = torch.Generator().manual_seed(1)
    src = torch.randn(4, 6, generator=g).requires_grad_()
    tgt = torch.randn(4, 6, generator=g)
    before_pos = _cos(src[0].detach(), tgt[0])
    before_neg = _cos(src[0].detach(), tgt[1])
    translation_contrast(src, tgt).backward()
    with torch.no_grad():
        stepped = src - 0.05 * src.grad
    assert _cos(stepped[0], tgt[0]) > before_pos
    assert _cos(stepped[0], tgt[1]) < before_neg


def test_translation_contrast_single_pair_is_zero_with_graph():
    src = torch.randn(1, 4, requires_grad=True)
    tgt = torch.randn(1, 4, requires_grad=True)
    loss = translation_contrast(src, tgt)
    assert loss.item() == 0.0
    _finite_and_backward(loss, src, tgt)


def test_translation_contrast_identical_and_zero_reps_finite():
    src = torch.ones(3, 4, requires_grad=True)
    loss = translation_contrast(src, torch.ones(3, 4))
    assert loss.item() == pytest.approx(math.log(3), rel=1e-6)  # every similarity equal: uniform over 3
    _finite_and_backward(loss, src)
    zeros = torch.zeros(3, 4, requires_grad=True)
    _finite_and_backward(translation_contrast(zeros, torch.randn(3, 4)), zeros)


def test_translation_contrast_bf16_and_bad_shapes():
    src = torch.tensor([E1, E2], dtype=torch.bfloat16)
    loss = translation_contrast(src, src.clone(), temperature=0.1)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-10)), rel=1e-3)
    with pytest.raises(ValueError):
        translation_contrast(torch.zeros(2, 3), torch.zeros(3, 3))
    with pytest.raises(ValueError):
        translation_contrast(torch.zeros(2, 3), torch.zeros(2, 3), temperature=0.0)


# ---------------------------------------------------------------- label contrast


def test_label_contrast_value_by_hand():
    # z1 = z2 = e1 (class 0), z3 = e2, z4 = (e1 + e2)/sqrt2 (class 1); T = 0.5.
    reps = torch.tensor([E1, [2.0, 0.0], E2, [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    t = 0.5
    cos = [[1, 1, 0, R2], [1, 1, 0, R2], [0, 0, 1, R2], [R2, R2, R2, 1]]
    total = 0.0
    for i, pos in ((0, [1]), (1, [0]), (2, [3]), (3, [2])):
        denom = sum(math.exp(cos[i][a] / t) for a in range(4) if a != i)
        total += -sum(math.log(math.exp(cos[i][p] / t) / denom) for p in pos) / len(pos)
    assert label_contrast(reps, labels, temperature=t).item() == pytest.approx(total / 4, rel=1e-6)


def test_label_contrast_skips_anchors_without_positive_and_ignored_items():
    reps = torch.tensor([E1, E1, E2, [5.0, -3.0]])
    labels = torch.tensor([0, 0, 1, -100])  # anchor 3 has no positive; item 4 is ignored entirely
    expected = -math.log(math.exp(1) / (math.exp(1) + math.exp(0)))  # anchors 1, 2 with T = 1
    assert label_contrast(reps, labels, temperature=1.0).item() == pytest.approx(expected, rel=1e-6)


def test_label_contrast_gradient_step_pulls_same_label_together():
    g = torch.Generator().manual_seed(2)
    reps = torch.randn(6, 5, generator=g).requires_grad_()
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    before_pos = _cos(reps[0].detach(), reps[1].detach())
    before_neg = _cos(reps[0].detach(), reps[3].detach())
    label_contrast(reps, labels).backward()
    with torch.no_grad():
        stepped = reps - 0.05 * reps.grad
    assert _cos(stepped[0], stepped[1]) > before_pos
    assert _cos(stepped[0], stepped[3]) < before_neg


@pytest.mark.parametrize(
    "labels",
    [torch.tensor([3]), torch.tensor([0, 1, 2]), torch.tensor([-100, -100, 1]), torch.tensor([], dtype=torch.long)],
    ids=["single", "all-distinct", "one-kept", "empty"],
)
def test_label_contrast_no_positive_is_zero_with_graph(labels):
    reps = torch.randn(len(labels), 4, requires_grad=True)
    loss = label_contrast(reps, labels)
    assert loss.item() == 0.0
    _finite_and_backward(loss, reps)


def test_label_contrast_one_class_and_identical_reps_finite():
    reps = torch.ones(5, 3, requires_grad=True)
    loss = label_contrast(reps, torch.zeros(5, dtype=torch.long))
    assert loss.item() == pytest.approx(math.log(4), rel=1e-6)  # log(N - 1), N = 5
    _finite_and_backward(loss, reps)
    zeros = torch.zeros(4, 3, requires_grad=True)
    _finite_and_backward(label_contrast(zeros, torch.tensor([0, 0, 1, 1])), zeros)


def test_label_contrast_flattened_tokens_bf16():
    g = torch.Generator().manual_seed(3)
    tokens = torch.randn(2, 5, 8, generator=g)
    tags = torch.tensor([[1, -100, 2, -100, 1], [2, 1, -100, -100, -100]])
    loss = label_contrast(tokens.reshape(-1, 8).bfloat16(), tags.reshape(-1))
    ref = label_contrast(tokens.reshape(-1, 8).bfloat16().float(), tags.reshape(-1))
    assert loss.dtype == torch.float32 and loss.item() == pytest.approx(ref.item(), rel=1e-5)


# ---------------------------------------------------------------- distillation


def test_distillation_value_by_hand():
    student = torch.tensor([[0.0, 0.0]])
    teacher = torch.tensor([[math.log(3), 0.0]])
    kl_t1 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert distillation(student, teacher, temperature=1.0).item() == pytest.approx(kl_t1, rel=1e-6)
    p = math.sqrt(3) / (math.sqrt(3) + 1)  # softmax([log3 / 2, 0])
    kl_t2 = p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5)
    assert distillation(student, teacher, temperature=2.0).item() == pytest.approx(4 * kl_t2, rel=1e-6)


def test_distillation_zero_iff_equal():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(3, 4, 5, generator=g)
    assert distillation(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation(logits, logits + 100.0).item() == pytest.approx(0.0, abs=1e-5)  # softmax is shift-invariant
    assert distillation(logits, torch.randn(3, 4, 5, generator=g)).item() > 0


def test_distillation_mask_counts_only_masked_tokens():
    student = torch.tensor([[[0.0, 0.0], [9.0, -9.0]]])
    teacher = torch.tensor([[[math.log(3), 0.0], [-9.0, 9.0]]])
    mask = torch.tensor([[True, False]])
    only_first = distillation(student[:, :1], teacher[:, :1], temperature=1.0)
    assert distillation(student, teacher, temperature=1.0, mask=mask).item() == pytest.approx(only_first.item(), rel=1e-6)


def test_distillation_gradient_goes_to_student_only_and_empty_mask():
    student = torch.randn(2, 3, 4, requires_grad=True)
    teacher = torch.randn(2, 3, 4, requires_grad=True)
    loss = distillation(student, teacher)
    loss.backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None  # the teacher is a fixed target
    empty = distillation(student, teacher, mask=torch.zeros(2, 3, dtype=torch.bool))
    assert empty.item() == 0.0
    _finite_and_backward(empty, student)


def test_distillation_gradient_step_reduces_kl_and_bf16():
    g = torch.Generator().manual_seed(5)
    student = torch.randn(4, 3, generator=g).requires_grad_()
    teacher = torch.randn(4, 3, generator=g)
    before = distillation(student, teacher)
    before.backward()
    with torch.no_grad():
        after = distillation(student - 0.1 * student.grad, teacher)
    assert after.item() < before.item()
    loss = distillation(student.detach().bfloat16(), teacher.bfloat16())
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


def test_label_contrast_over_processes_sums_to_the_whole_batch():
    """Each process sums its anchors' terms against every item; the sums over processes divided by the global
    anchor count equal the loss of the whole batch, gradients included."""
    from xltune.objectives.label_contrast import label_contrast_sum

    g = torch.Generator().manual_seed(3)
    reps = torch.randn(7, 5, generator=g).requires_grad_()
    labels = torch.tensor([0, 1, 0, 2, 1, -100, 0])
    whole = label_contrast(reps, labels, 0.2)
    (g_whole,) = torch.autograd.grad(whole, reps)
    parts = [label_contrast_sum(reps, labels, slice(a, b), 0.2) for a, b in ((0, 3), (3, 7))]
    assert parts[0][1] == parts[1][1] == 5  # anchors with a positive: label 2 and the ignored item have none
    split = (parts[0][0] + parts[1][0]) / parts[0][1]
    (g_split,) = torch.autograd.grad(split, reps)
    assert split.item() == pytest.approx(whole.item(), rel=1e-6)
    assert torch.allclose(g_split, g_whole, atol=1e-6)


def test_contrastive_objectives_refuse_gradient_accumulation(tiny_xglm_dir, tmp_path):
    from tiny_data import write_xnli_like

    from xltune.api import run_experiment
    from xltune.config import load_config

    data = write_xnli_like(tmp_path / "xnli")
    cfg = load_config(None, [f"model.name_or_path={tiny_xglm_dir}", "task.name=xnli", f"task.data_dir={data}",
                             "train.split=dev", "train.shots=2", "train.batch_size=6", "train.grad_accum=2",
                             f"store={tmp_path / 'r.sqlite'}", "train.translations.languages=[de]",
                             "objectives=[{name: cross_entropy}, {name: label_contrast, weight: 0.5}]"])
    with pytest.raises(XLTuneError, match="train.grad_accum 2 a micro-batch would see 1/2 of it"):
        run_experiment(cfg, log=lambda *_: None)

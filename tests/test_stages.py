"""The step's tensor stages (tricks/clip.py, tricks/regularization.py) match torch's own clipping, and give
each member of stacked models (dimension 0) what that model alone would get: the shape the fused packs of the
many-models issue run the same stages in."""

from __future__ import annotations

import pytest
import torch

from tricklab.tricks.clip import build_clip, clip_adaptive_, clip_by_norm_, clip_by_value_, grad_norm, needs_norm
from tricklab.tricks.gradient import backward, build_gradients
from tricklab.tricks.regularization import penalty


def gradients(seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator) * 3 for shape in ((5, 4), (5,), (2, 5))]


def test_grad_norm_and_clip_by_norm_match_torch():
    grads = gradients(0)
    params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    expected_norm = torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    norm = grad_norm(grads)
    assert norm == pytest.approx(float(expected_norm))
    clip_by_norm_(params, grads, norm, 1.0)
    for p, g in zip(params, grads, strict=True):
        torch.testing.assert_close(g, p.grad)
    assert float(grad_norm(grads)) == pytest.approx(1.0, rel=1e-5)


def test_clip_by_value_and_none():
    grads = gradients(1)
    build_clip({"name": "value", "max_value": 0.5})(grads, grads, None)  # its params go unread
    assert max(float(g.abs().max()) for g in grads) == pytest.approx(0.5)
    assert build_clip({"name": "none"}) is None and build_clip(None) is None


def test_each_stacked_member_is_measured_and_clipped_as_if_alone():
    alone = [gradients(seed) for seed in (0, 1, 2)]
    alone[1] = [g * 1e-3 for g in alone[1]]  # a member under the threshold: left unclipped
    stacked = [torch.stack(tensors) for tensors in zip(*alone, strict=True)]
    norms = grad_norm(stacked, members=True)
    assert norms.shape == (3,)
    for k, grads in enumerate(alone):
        assert float(norms[k]) == pytest.approx(float(grad_norm(grads)), rel=1e-6)
        clip_by_norm_(grads, grads, grad_norm(grads), 2.0)  # params go unread
    clip_by_norm_(stacked, stacked, norms, 2.0)
    for k, grads in enumerate(alone):
        for member_grad, own in zip((s[k] for s in stacked), grads, strict=True):
            torch.testing.assert_close(member_grad, own)
    clip_by_value_(stacked, stacked, None, 0.1)
    assert float(max(s.abs().max() for s in stacked)) == pytest.approx(0.1)


def test_penalty_per_member_is_each_models_penalty():
    weights = [gradients(seed)[::2] for seed in (3, 4)]
    stacked = [torch.stack(tensors) for tensors in zip(*weights, strict=True)]
    per_member = penalty(stacked, l1=0.01, l2=0.1, members=True)
    expected = [float(penalty(w, l1=0.01, l2=0.1)) for w in weights]
    assert per_member.tolist() == pytest.approx(expected, rel=1e-6)
    by_hand = sum(0.01 * w.abs().sum() + 0.05 * w.pow(2).sum() for w in weights[0])
    assert expected[0] == pytest.approx(float(by_hand), rel=1e-6)


def test_adaptive_clipping_holds_each_units_gradient_to_lambda_times_its_weights_norm():
    """By hand: W's rows have norms 5 and 0 (floored to ε), b's norm is 5; λ = 0.1."""
    w, b = torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.tensor([3.0, 4.0])
    gw, gb = torch.tensor([[0.3, 0.4], [1.0, 0.0]]), torch.tensor([0.03, 0.04])
    build_clip({"name": "agc", "clip_factor": 0.1, "eps": 1e-3})([w, b], [gw, gb], None)
    # row 0: ‖g‖/‖W‖ = 0.5/5 = 0.1, not above λ: unchanged; row 1: ‖g‖ = 1 > 0.1·1e-3, scaled to 1e-4
    torch.testing.assert_close(gw, torch.tensor([[0.3, 0.4], [1e-4, 0.0]]))
    torch.testing.assert_close(gb, torch.tensor([0.03, 0.04]))  # 0.05/5 = 0.01 ≤ λ: the bias is one unit
    big = torch.tensor([6.0, 8.0])  # ‖g‖ = 10 > 0.1·5: g·0.5/10
    clip_adaptive_([b], [big], None, clip_factor=0.1, eps=1e-3)
    torch.testing.assert_close(big, torch.tensor([0.3, 0.4]))
    generator = torch.Generator().manual_seed(0)
    conv_w = torch.randn(4, 3, 5, generator=generator)  # conv filters: one unit per output channel, (in, kernel)
    conv_g = torch.randn(4, 3, 5, generator=generator) * 10
    expected = [g * min(1.0, 0.01 * max(float(wk.norm()), 1e-3) / float(g.norm()))
                for wk, g in zip(conv_w, conv_g, strict=True)]
    clip_adaptive_([conv_w], [conv_g], None, clip_factor=0.01, eps=1e-3)
    torch.testing.assert_close(conv_g, torch.stack(expected))
    assert not needs_norm({"name": "agc", "clip_factor": 0.1, "eps": 1e-3})


def test_adaptive_clipping_of_stacked_members_is_each_members_own():
    """A fused pack stacks its members' parameters along dimension 0: each member's units are clipped by its own
    weights' norms, as the member alone would be."""
    def params(seed: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(seed)
        return [torch.randn(shape, generator=generator) for shape in ((5, 4), (5,), (2, 5), (2, 5, 3))]

    weights = [params(seed) for seed in (0, 1, 2)]
    alone = [gradients(seed) + [params(seed)[3] * 3] for seed in (3, 4, 5)]
    alone[1] = [g * 1e-4 for g in alone[1]]  # a member under the threshold: left unclipped
    stacked_w = [torch.stack(tensors) for tensors in zip(*weights, strict=True)]
    stacked_g = [torch.stack(tensors) for tensors in zip(*alone, strict=True)]
    before = [g.clone() for g in stacked_g]
    for w, g in zip(weights, alone, strict=True):
        build_clip({"name": "agc", "clip_factor": 0.05, "eps": 1e-3})(w, g, None)
    build_clip({"name": "agc", "clip_factor": 0.05, "eps": 1e-3}, members=True)(stacked_w, stacked_g, None)
    for k, grads in enumerate(alone):
        for member_grad, own in zip((s[k] for s in stacked_g), grads, strict=True):
            torch.testing.assert_close(member_grad, own)
    assert all(torch.equal(g[1], b[1]) for g, b in zip(stacked_g, before, strict=True))
    assert not torch.equal(stacked_g[0][0], before[0][0])  # the others were clipped


def test_the_gradient_stage_is_one_backward_by_default_and_sam_replaces_it_with_two_passes():
    """gradient=sam leaves ∇L(θ + ε̂), ε̂ = ρ·g/‖g‖₂, in p.grad (by hand, below) and θ exactly as it was."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))

    class Module:  # what a gradient rule uses of ClassifierModule
        params = list(model.parameters())
        passes = 0

        def compute_gradients(self, objective):
            self.passes += 1
            for p in self.params:
                p.grad = None
            objective.backward()

        def objective(self, x, y):
            logits = model(x)
            loss = torch.nn.functional.cross_entropy(logits, y)
            return loss, logits, loss

    assert build_gradients(None) is backward and build_gradients({"name": "backward"}) is backward
    theta = [p.detach().clone() for p in model.parameters()]
    g = torch.autograd.grad(Module().objective(x, y)[2], list(model.parameters()))
    norm = torch.sqrt(sum((gi ** 2).sum() for gi in g))
    ascended = [(p + 0.05 * gi / norm).requires_grad_() for p, gi in zip(theta, g, strict=True)]
    expected = torch.autograd.grad(torch.nn.functional.cross_entropy(torch.nn.functional.linear(x, *ascended), y),
                                   ascended)
    module = Module()
    build_gradients({"name": "sam", "rho": 0.05})(module, module.objective(x, y)[2], x, y)
    assert module.passes == 2
    for p, before, want in zip(model.parameters(), theta, expected, strict=True):
        assert torch.equal(p.detach(), before)
        torch.testing.assert_close(p.grad, want)

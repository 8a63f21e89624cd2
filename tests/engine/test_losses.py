"""Losses against values worked out by hand on 2x2 tensors."""

from __future__ import annotations

import pytest
import torch

from helpers import grad_of
from nstpipe.engine.losses import content_loss, gram, relative_error, style_loss, temporal_loss, tv_loss


def t(rows: list[list[float]]) -> torch.Tensor:
    """A (1, 1, H, W) tensor from nested lists."""
    return torch.tensor(rows, dtype=torch.float32).view(1, 1, len(rows), len(rows[0]))


def test_gram_single_channel() -> None:
    # F = [1 2 3 4]; F F^T = 1 + 4 + 9 + 16 = 30; C*H*W = 4.
    g = gram(t([[1, 2], [3, 4]]))
    assert g.shape == (1, 1, 1)
    assert g.item() == pytest.approx(7.5)


def test_gram_two_channels() -> None:
    # channel 0 = [1, 2], channel 1 = [3, 0] (H=1, W=2): F F^T = [[5, 3], [3, 9]], / (2*1*2).
    features = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])
    assert gram(features).flatten().tolist() == pytest.approx([1.25, 0.75, 0.75, 2.25])


def test_gram_per_batch_item() -> None:
    features = torch.cat([t([[1, 2], [3, 4]]), t([[2, 0], [0, 0]])])
    assert gram(features).flatten().tolist() == pytest.approx([7.5, 1.0])


def test_gram_of_channels_last_features_matches_and_keeps_the_layout() -> None:
    # The bf16 path hands the losses channels-last features; the Gram and its gradient
    # must not depend on the layout, and the gradient comes back in the same layout.
    gen = torch.Generator().manual_seed(0)
    plain = torch.randn(2, 5, 4, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    last = plain.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    weights = torch.randn(2, 5, 5, generator=gen, dtype=torch.float64)
    (gram(plain) * weights).sum().backward()
    (gram(last) * weights).sum().backward()
    assert torch.allclose(gram(last), gram(plain))
    assert torch.allclose(grad_of(last), grad_of(plain))
    assert grad_of(last).is_contiguous(memory_format=torch.channels_last)


def test_bf16_features_give_fp32_grams_and_losses() -> None:
    # The bf16 pass hands its features over as they are: the product runs in bf16 (the
    # matrix units), the results are widened so that the losses are summed in fp32.
    gen = torch.Generator().manual_seed(0)
    features = torch.rand(1, 8, 6, 5, generator=gen).contiguous(memory_format=torch.channels_last)
    half = features.to(torch.bfloat16)
    assert gram(half).dtype == torch.float32
    assert torch.allclose(gram(half), gram(features), rtol=2e-2, atol=1e-3)
    target = gram(features)[0] * 1.5
    loss = style_loss(half.requires_grad_(True), target)
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(style_loss(features, target).item(), rel=2e-2)
    loss.sum().backward()
    assert half.grad is not None and half.grad.dtype == torch.bfloat16
    assert content_loss(half, features).dtype == torch.float32
    assert gram(features.double()).dtype == torch.float64  # fp64 (gradcheck) is not narrowed


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_gram_gradient_is_exact(layout: torch.memory_format) -> None:
    # The Gram's own backward, (dG + dG^T) F, against finite differences.
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64).contiguous(memory_format=layout).requires_grad_(True)
    assert torch.autograd.gradcheck(gram, (x,))


def test_content_loss_is_relative_squared_error() -> None:
    # ||x - t||^2 = 0 + 1 + 4 + 9 = 14; ||t||^2 = 4.
    loss = content_loss(t([[1, 2], [3, 4]]), t([[1, 1], [1, 1]]))
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(3.5)


def test_content_loss_per_batch_item() -> None:
    x = torch.cat([t([[1, 2], [3, 4]]), t([[2, 2], [2, 2]])])
    target = torch.cat([t([[1, 1], [1, 1]]), t([[1, 1], [1, 1]])])
    # second item: ||x - t||^2 = 4, ||t||^2 = 4.
    assert content_loss(x, target).tolist() == pytest.approx([3.5, 1.0])


def test_content_loss_zero_at_target_and_scale_free() -> None:
    x = t([[0.5, -1], [2, 3]])
    assert content_loss(x, x).item() == 0.0
    assert content_loss(1000 * x, 1000 * t([[1, 1], [1, 1]])).item() == pytest.approx(
        content_loss(x, t([[1, 1], [1, 1]])).item(), rel=1e-5
    )


def test_style_loss_relative_gram_error() -> None:
    # G(F) = 7.5 against a target Gram of 5: (7.5 - 5)^2 / 5^2 = 0.25.
    features = t([[1, 2], [3, 4]])
    assert style_loss(features, torch.tensor([[5.0]])).item() == pytest.approx(0.25)
    assert style_loss(features, torch.tensor([[[5.0]]])).item() == pytest.approx(0.25)


def test_style_loss_broadcasts_one_target_over_the_batch() -> None:
    features = torch.cat([t([[1, 2], [3, 4]]), t([[2, 0], [0, 0]])])  # Grams 7.5 and 1
    # (7.5 - 5)^2 / 25 = 0.25 and (1 - 5)^2 / 25 = 0.64.
    assert style_loss(features, torch.tensor([[5.0]])).tolist() == pytest.approx([0.25, 0.64])


def test_tv_loss_2x2() -> None:
    # horizontal differences 1, 1 -> mean square 1; vertical 2, 2 -> mean square 4.
    loss = tv_loss(t([[1, 2], [3, 4]]))
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(5.0)


def test_tv_loss_2x3() -> None:
    # dx = [1, 2, 0, 0] -> 5/4; dy = [0, -1, -3] -> 10/3.
    assert tv_loss(t([[0, 1, 3], [0, 0, 0]])).item() == pytest.approx(1.25 + 10 / 3)


def test_tv_loss_averages_over_channels_and_is_zero_for_flat_images() -> None:
    two = torch.cat([t([[1, 2], [3, 4]]), torch.zeros(1, 1, 2, 2)], dim=1)
    assert tv_loss(two).item() == pytest.approx(2.5)
    assert tv_loss(torch.full((2, 3, 5, 5), 0.7)).tolist() == [0.0, 0.0]


def test_relative_error_with_zero_target_is_finite() -> None:
    assert torch.isfinite(relative_error(t([[1.0]]), t([[0.0]]))).all()


def test_losses_do_not_depend_on_resolution() -> None:
    """The same picture at two sizes (nearest upscaling) gives the same relative losses."""
    gen = torch.Generator().manual_seed(0)
    small = torch.rand(1, 4, 8, 8, generator=gen)
    target = torch.rand(1, 4, 8, 8, generator=gen)
    big, big_target = (x.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3) for x in (small, target))
    assert torch.allclose(gram(big), gram(small), rtol=1e-5)
    assert style_loss(big, gram(big_target)[0]).item() == pytest.approx(style_loss(small, gram(target)[0]).item(), rel=1e-4)
    assert content_loss(big, big_target).item() == pytest.approx(content_loss(small, target).item(), rel=1e-5)
    assert style_loss(small, gram(target)[0]).item() > 0.01


def test_temporal_loss_by_hand() -> None:
    # One channel, 2x2: differences 1, 2, 3, 4; mask keeps the first and last pixels.
    image = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    warped = torch.zeros_like(image)
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    # (1 + 16) / (C H W = 4)
    assert temporal_loss(image, warped, mask).tolist() == pytest.approx([17 / 4])
    assert temporal_loss(image, warped, torch.zeros_like(mask)).tolist() == [0.0]


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_squared_error_and_its_gradients_are_autograds_in_the_inputs_layout(layout: torch.memory_format) -> None:
    from nstpipe.engine.losses import squared_error

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 5, generator=gen).to(memory_format=layout).requires_grad_(True)
    t = torch.randn(2, 4, 3, 5, generator=gen).to(memory_format=layout).requires_grad_(True)
    weights = torch.tensor([0.5, 2.0])
    (squared_error(x, t) * weights).sum().backward()
    mine = grad_of(x).clone(), grad_of(t).clone()
    x.grad = t.grad = None
    ((x - t).pow(2).sum((1, 2, 3)) * weights).sum().backward()
    assert torch.allclose(mine[0], grad_of(x)) and torch.allclose(mine[1], grad_of(t))
    assert squared_error(x, t).tolist() == pytest.approx((x - t).pow(2).sum((1, 2, 3)).tolist())
    assert mine[0].is_contiguous(memory_format=layout)  # no copy into another layout
    x.grad = None
    squared_error(x, t.detach()).sum().backward()  # a constant target: no gradient made for it
    assert torch.allclose(grad_of(x), 2 * (x - t).detach())

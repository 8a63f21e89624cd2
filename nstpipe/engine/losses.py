"""The three losses of Gatys et al., as plain functions on (N, C, H, W) tensors.

Departure from the paper, on purpose: content and style losses are *relative* squared
errors, ||x - t||^2 / ||t||^2, and the Gram matrix is divided by C*H*W. The paper's
sums grow with the image area and differ by orders of magnitude between layers, so its
weights must be re-tuned for every size; relative errors are the same order at 128 px
and 1024 px and at every layer, so one set of default weights works everywhere. They
are also exactly the distances the benchmarks report, so the optimizer minimizes what
is measured. Each function returns one loss per batch item, shape (N,).
"""

from __future__ import annotations

import torch


def gram(features: torch.Tensor) -> torch.Tensor:
    """G = F F^T / (C H W), one fp32 (C, C) matrix per batch item.

    The product runs in the features' dtype: bf16 features (the bf16 pass) give a bf16
    product, accumulated in fp32 by the matrix units and rounded once, then widened.
    """
    _, c, h, w = features.shape
    return gram_sum(features) / (c * h * w)


def gram_sum(features: torch.Tensor) -> torch.Tensor:
    """F F^T, unnormalized, one fp32 (C, C) matrix per batch item, the product in the
    features' dtype (see :func:`gram`): what the tiles of a picture add up."""
    n, c, h, w = features.shape
    if features.is_contiguous(memory_format=torch.channels_last) and not features.is_contiguous():
        # Channels-last (the bf16 path): F as (C, HW) is a transposed view, not a copy.
        flat = features.permute(0, 2, 3, 1).reshape(n, h * w, c).transpose(1, 2)
    else:
        flat = features.reshape(n, c, h * w)
    return widen(_Gram.apply(flat))


def widen(x: torch.Tensor) -> torch.Tensor:
    """bf16 (or fp16) -> fp32, so that the losses are summed in fp32; fp32 and fp64 stay."""
    return x.float() if x.element_size() < 4 else x


class _Gram(torch.autograd.Function):
    """F F^T with a one-product backward: dF = (dG + dG^T) F.

    Autograd would differentiate F @ F^T as a product of two tensors (two products and a
    sum); the Grams are a sizeable share of an iteration, so the third saved counts.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, flat: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(flat)
        # torch.bmm, not @: in bf16, matmul copies a transposed operand before multiplying
        # (8.6 ms against 1.0 ms for a 64 x 65536 Gram on the CPU), bmm reads it in place.
        return torch.bmm(flat, flat.transpose(1, 2))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        (flat,) = ctx.saved_tensors  # type: ignore[attr-defined]
        sym = grad + grad.transpose(1, 2)
        if flat.stride(1) == 1:  # channels-last storage: return the gradient in the same layout
            return torch.bmm(flat.transpose(1, 2), sym).transpose(1, 2)
        return torch.bmm(sym, flat)


EPS = 1e-12  # keeps a relative error finite against an all-zero target


def squared_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||x - target||^2 per batch item, in fp32."""
    error: torch.Tensor = _SquaredError.apply(widen(x), widen(target))  # apply() is typed Any
    return error


class _SquaredError(torch.autograd.Function):
    """||x - t||^2 per item, with a one-product backward, 2 (x - t) g, in x's memory layout.

    Autograd's (x - t).pow(2) backward takes two products; F.mse_loss copies channels-last
    inputs to the plain layout on the CPU (4 times slower than this on a 512x64x64 map).
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        diff = x - target
        ctx.save_for_backward(diff)
        return diff.pow(2).sum(tuple(range(1, diff.dim())))

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        (diff,) = ctx.saved_tensors  # type: ignore[attr-defined]
        dx = diff * (2 * grad).view((-1,) + (1,) * (diff.dim() - 1))
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        return (dx if needs[0] else None), (-dx if needs[1] else None)


def squared_norm(target: torch.Tensor, batched: bool = True) -> torch.Tensor:
    """||target||^2 + EPS in fp32: per item of dimension 0 (N,), or of the whole (``batched=False``: a scalar)."""
    target = widen(target)
    return target.pow(2).sum(tuple(range(1, target.dim())) if batched else None) + EPS


def relative_error(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||x - target||^2 / ||target||^2 per batch item, in fp32 whatever the inputs' dtype."""
    return squared_error(x, target) / squared_norm(target)


def gram_norm(target_gram: torch.Tensor) -> torch.Tensor:
    """squared_norm of a Gram target: (N,) for one per picture (N, C, C), a scalar for a shared (C, C)."""
    return squared_norm(target_gram, batched=target_gram.dim() == 3)


def gram_error(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """||gram(features) - target||^2 per batch item; ``target_gram`` is (C, C) or (N, C, C)."""
    return squared_error(gram(features), target_gram.expand(features.shape[0], -1, -1))


def content_loss(features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return relative_error(features, target)


def style_loss(features: torch.Tensor, target_gram: torch.Tensor) -> torch.Tensor:
    """Relative Gram error; ``target_gram`` is (C, C) or (N, C, C)."""
    return gram_error(features, target_gram) / gram_norm(target_gram)


def tv_loss(image: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (horizontal plus vertical)."""
    dx = image[..., :, 1:] - image[..., :, :-1]
    dy = image[..., 1:, :] - image[..., :-1, :]
    return dx.pow(2).mean((1, 2, 3)) + dy.pow(2).mean((1, 2, 3))


def tv_loss_wrapped(image: torch.Tensor) -> torch.Tensor:
    """:func:`tv_loss` on the picture seen as a torus: the last column's neighbour is the
    first, the last row's the first row, so a tileable texture is smooth across the seam too."""
    dx = image.roll(-1, dims=-1) - image
    dy = image.roll(-1, dims=-2) - image
    return dx.pow(2).mean((1, 2, 3)) + dy.pow(2).mean((1, 2, 3))


def temporal_loss(image: torch.Tensor, warped: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ruder et al. (2016): sum(mask * (image - warped)^2) / (C H W) per batch item.

    ``mask`` (N or 1, 1, H, W) is 0 where the warped previous frame is not to be trusted
    (occlusions, motion boundaries), so those pixels are free to follow the content.
    """
    _, c, h, w = image.shape
    return (mask * (image - warped).pow(2)).sum((1, 2, 3)) / (c * h * w)

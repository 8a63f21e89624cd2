"""The objective's forward and backward pass, recorded once as a CUDA graph and replayed.

Why: on a GPU the engine's iteration is bound by the host, not by the device. The
arithmetic of a 512x512 iteration takes a fast GPU well under a millisecond, but the VGG19
pass, its Gram matrices and losses, and the backward pass are some hundreds of small
kernels, each launched from Python through the dispatcher and autograd, so the device waits
on the host. A graph records those kernels once per pyramid level (one shape of the batch)
and replays them with one launch.

Only the pass is recorded. The optimizer's step stays eager: L-BFGS branches on values
(whether a curvature pair is kept, whether a step is taken back) that a graph cannot.

Opt-in (``cuda_graphs = true`` in a config file): ``python -m bench hardware --device cuda``
times both side by side. tests/test_cuda.py checks it against the eager
pass on a GPU.
"""

from __future__ import annotations

from typing import Callable

import torch


class GraphedLosses:
    """``losses(x)`` (one loss per batch item) and its gradient, replayed from a CUDA graph.

    ``losses`` must be a pure function of ``x`` and of tensors that stay put while this
    object lives (the targets): the graph reads them where they were at capture. The
    input, the losses and the gradient live in static buffers that every replay
    overwrites; callers copy what they keep.
    """

    def __init__(self, losses: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, warmup: int = 2) -> None:
        device = example.device
        self.x = example.detach().clone().requires_grad_(True)
        # Warm-up on a side stream, as torch.cuda.graph asks: cuBLAS and cuDNN create their
        # handles and workspaces and choose algorithms there, outside the recording.
        side = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]  # torch leaves Stream() unannotated
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                self.x.grad = None
                torch.autograd.backward(losses(self.x).sum())
        torch.cuda.current_stream(device).wait_stream(side)
        self.x.grad = None
        self.graph = torch.cuda.CUDAGraph()
        try:
            # torch.cuda.graph gives the warm-up's cached memory back first, so the level's
            # peak is one pass, not two. thread_local: another thread of this process (a
            # frame reader, a writer) may make CUDA-unsafe calls while this one records.
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                recorded = losses(self.x)
                torch.autograd.backward(recorded.sum())
        except RuntimeError as exc:
            raise _as_oom(exc) from exc
        self.losses = recorded.detach()
        assert self.x.grad is not None
        self.grad: torch.Tensor = self.x.grad

    def __call__(self, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Losses and gradient at ``x`` (None: at what :attr:`x` already holds)."""
        if x is not None:
            with torch.no_grad():
                self.x.copy_(x)
        self.graph.replay()
        return self.losses, self.grad


def _as_oom(exc: BaseException) -> BaseException:
    """An out-of-memory during the recording as what it is.

    Ending a recording that an allocation broke off can itself fail, and that error would
    hide the OutOfMemoryError on which callers retry with a smaller batch.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, torch.cuda.OutOfMemoryError):
            return seen
        seen = seen.__context__
    return exc

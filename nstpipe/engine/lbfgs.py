"""L-BFGS as the engine runs it, with the history applied in compact matrix form.

The same iteration as ``torch.optim.LBFGS(lr=1, max_iter=1, history_size=m)`` with its
tolerances off and no line search: the first step is ``-g`` scaled to a unit L1 norm, every
later step ``-H g`` with H the limited-memory inverse-Hessian estimate from the last m
curvature pairs (s, y), scaled by y.s / y.y of the newest pair.

Why not torch's: its two-loop recursion passes each of its 2m coefficients as a Python
number (``alpha=``), so a step on a GPU waits for the device about 2m times (200 with our
history of 100) and launches some 4m small kernels. At 512x512 on an H100 a whole VGG19
iteration takes about half a millisecond; those waits alone take several. Here the pairs
sit in one (2m, D) matrix and H g is computed as in Byrd, Nocedal and Schnabel (1994,
theorem 2.2): two matrix products that each read the history once (as many bytes as the
two-loop recursion reads), two triangular solves of m x m, and one value read back per
step (whether the new pair has positive curvature, which decides whether it is kept,
exactly as torch does).

One departure from torch's iteration, for want of a line search: a step whose loss comes
back more than ``RISE`` above the last accepted one (or not finite) is taken back. What it
measured is kept as a curvature pair (the secant along an overshooting step says the
curvature there is larger than H assumed), and a step of half the length (a quarter after
a second miss, and so on) is tried from the accepted point along the new direction.
Without this, one bad curvature estimate at the start of a pyramid level can throw the
picture far up the loss (starry_night at 256 px with a history of 50 does), and the level
then stops on the stall rule with that picture.
"""

from __future__ import annotations

import torch

RISE = 0.1  # relative rise of the loss that counts as an overshoot; healthy runs never rise


class LBFGS:
    """One parameter tensor, stepped from the gradient already in ``x.grad``.

    Every whole-picture vector a step needs lives in two blocks made once, the history and
    a (3, D) work block, and each step writes into them in place: at 4000x3000 a picture's
    vector is 144M, and the temporaries of a step written plainly (the gradient change, the
    stacked operands, the scaled and negated direction, the taken step, the copies kept for
    the next step) came to about eight more of them.
    """

    def __init__(self, x: torch.Tensor, history: int = 100) -> None:
        self.x = x
        self.m = max(1, history)
        # Rows 0..m-1: the steps s by slot; rows m..2m-1: the gradient changes y by slot.
        # ``order`` lists the slots in use, oldest first.
        self.pairs = x.new_zeros(2 * self.m, x.numel())
        self.order: list[int] = []
        # Row 0: the gradient at the accepted point; row 1: the newest gradient change y;
        # row 2: t d of the last step, taken or not (s). One block, so that the step's one
        # read of the history multiplies it as it is.
        self.work = x.new_zeros(3, x.numel())
        # s_i . y_j and y_i . y_j by slot, in float64: the triangular solves with them are
        # the one ill-conditioned part of a step.
        self.sy = torch.zeros(self.m, self.m, dtype=torch.float64, device=x.device)
        self.yy = torch.zeros_like(self.sy)
        self.gamma = torch.ones((), dtype=torch.float64, device=x.device)  # H0 = gamma I
        self.kept: torch.Tensor | None = None  # 1 where the last step moved x, 0 where it did not
        self.prev_loss: float | None = None  # the loss at the last accepted point
        self.misses = 0  # overshoots in a row

    @torch.no_grad()
    def step(self, closure: object = None, loss: float | None = None) -> None:
        """Move ``x`` one step; ``loss`` is the loss at ``x`` (without it, no step is ever
        taken back); ``closure`` is accepted for the optimizer interface and ignored."""
        assert self.x.grad is not None, "backward() first"
        grad = self.x.grad.reshape(-1)
        accepted, change = self.work[0], self.work[1]
        if self.kept is None:
            accepted.copy_(grad)
            direction = grad.neg()
            size = torch.clamp(1.0 / grad.abs().sum(), max=1.0)  # as torch sums it
        elif loss is not None and self.prev_loss is not None and not loss <= self.prev_loss + RISE * abs(self.prev_loss):
            self._take_back(grad)
            return
        else:
            torch.sub(grad, accepted, out=change)
            accepted.copy_(grad)
            direction = self._descent()
            size = torch.ones((), dtype=grad.dtype, device=grad.device)
        self.misses, self.prev_loss = 0, loss
        self._move(direction, size)

    def _move(self, direction: torch.Tensor, size: torch.Tensor) -> None:
        # torch stops when g.d > -tolerance_change (here: > 1, not a descent direction) but
        # keeps d and t all the same; a zero factor does that without asking the device.
        self.kept = (self.work[0].dot(direction) <= 1.0).to(direction.dtype)
        step = self.work[2]
        torch.mul(direction, size, out=step)
        del direction
        self.x.view(-1).addcmul_(step, self.kept)

    def _take_back(self, grad: torch.Tensor) -> None:
        """Back to the accepted point, keeping the overshot step as a curvature pair (a
        non-finite or non-positive one is dropped by the curvature test), and a shorter
        step from there."""
        assert self.kept is not None
        self.x.view(-1).addcmul_(self.work[2], self.kept, value=-1)
        self.misses += 1
        torch.sub(grad, self.work[0], out=self.work[1])
        direction = self._descent()
        self._move(direction, torch.full((), 0.5**self.misses, dtype=grad.dtype, device=grad.device))

    def _descent(self) -> torch.Tensor:
        """Take in the pair (s, y) of the work block, then -H g for its g:
        H g = gamma g + S p - gamma Y w, where w = R^-1 S^T g and
        p = R^-T ((D + gamma Y^T Y) w - gamma Y^T g), R = triu(S^T Y)."""
        m = self.m
        g, y, s = self.work[0], self.work[1], self.work[2]
        # One read of the history for everything this step needs from it.
        # (3, D) @ (D, 2m) streams the history once; (2m, D) @ (D, 3) is several times slower on CPU.
        dots = (self.work @ self.pairs.T).T.double()  # (2m, 3)
        s_g, s_y, y_g, y_y, y_s = dots[:m, 0], dots[:m, 1], dots[m:, 0], dots[m:, 1], dots[m:, 2]
        ys = y.dot(s)
        if float(ys) > 1e-10:  # the one value read per step: no curvature, no pair
            slot = self.order.pop(0) if len(self.order) == m else len(self.order)
            self.order.append(slot)
            self.pairs[slot], self.pairs[m + slot] = s, y
            new = torch.stack([ys, s.dot(g), y.dot(g), y.dot(y)]).double()
            s_g[slot], y_g[slot], s_y[slot], y_s[slot], y_y[slot] = new[1], new[2], new[0], new[0], new[3]
            self.sy[slot, :], self.sy[:, slot] = y_s, s_y  # s_slot . y_j, s_i . y_slot
            self.yy[slot, :], self.yy[:, slot] = y_y, y_y
            self.gamma = new[0] / new[3]
        gamma = self.gamma.to(g.dtype)
        if not self.order:
            return (gamma * g).neg_()
        idx = torch.tensor(self.order, device=g.device)
        sy = self.sy[idx][:, idx]
        r = torch.triu(sy)
        w = torch.linalg.solve_triangular(r, s_g[idx].unsqueeze(1), upper=True)
        inner = torch.diag(torch.diagonal(sy)) + self.gamma * self.yy[idx][:, idx]
        p = torch.linalg.solve_triangular(r.T, inner @ w - self.gamma * y_g[idx].unsqueeze(1), upper=False)
        coef = torch.zeros(2 * m, dtype=torch.float64, device=g.device)
        coef[idx] = p[:, 0]
        coef[m + idx] = -self.gamma * w[:, 0]
        # Rounded as gamma g + (coef @ pairs) and negated, not fused into one multiply-add:
        # the same floats as the plain expression, so that finished outputs stay as painted.
        direction = gamma * g
        direction.add_(coef.to(g.dtype) @ self.pairs)
        return direction.neg_()

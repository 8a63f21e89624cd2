"""The engine's fast paths: bf16 autocast, precision choice, batching, compilation, no wasted passes.

Speed itself is measured by python -m bench hardware, never asserted here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from helpers import TinyEncoder, smooth_image, stripes_image, tiny_engine
from nstpipe.config import EngineConfig, Settings, build_settings
from nstpipe.engine.device import batch_for_memory, resolve_batch
from nstpipe.engine.lbfgs import LBFGS
from nstpipe.engine.stylize import Objective, Stylizer, image_memory, resolve_precision
from nstpipe.engine.vgg import VGGFeatures, VGGWeights
from nstpipe.errors import ConfigError
from nstpipe.modes.model import read_image

MIB = 2**20
GIB = 2**30


def engine(**overrides: Any) -> EngineConfig:
    return tiny_engine(**{"iterations": 6, **overrides})


# -- bf16 autocast ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg_objective_inputs(vgg_weights: VGGWeights) -> tuple[VGGFeatures, torch.Tensor, torch.Tensor, torch.Tensor]:
    from helpers import DATA

    photo = read_image(DATA / "tubingen_64.jpg")
    painting = read_image(DATA / "starry_night_64.jpg")
    cfg = build_settings("default").engine
    encoder = VGGFeatures(vgg_weights, cfg.layers, cfg.pooling)
    # A picture part way between the two, as the optimizer sees them.
    image = (0.6 * photo + 0.4 * torch.nn.functional.interpolate(painting, size=photo.shape[-2:])).clamp(0, 1)
    return encoder, photo, painting, image


def objective_for(encoder: VGGFeatures, precision: str, photo: torch.Tensor, painting: torch.Tensor) -> tuple[Stylizer, Objective]:
    cfg = dataclasses.replace(build_settings("default").engine, precision=precision)
    stylizer = Stylizer(encoder, [painting], cfg)
    return stylizer, stylizer.objective(photo)


def test_bf16_loss_is_within_one_percent_of_fp32(vgg_objective_inputs: Any) -> None:
    encoder, photo, painting, image = vgg_objective_inputs
    losses, grads = {}, {}
    for precision in ("fp32", "bf16"):
        stylizer, objective = objective_for(encoder, precision, photo, painting)
        assert stylizer.precision == precision
        x = image.clone().requires_grad_(True)
        loss = objective(x)
        loss.backward()
        # The image, the loss and the gradient the optimizer gets stay fp32.
        assert loss.dtype == x.grad.dtype == torch.float32
        losses[precision], grads[precision] = loss.item(), x.grad
    relative = abs(losses["bf16"] - losses["fp32"]) / losses["fp32"]
    assert 0 < relative < 0.01  # > 0: the bf16 pass really ran
    cosine = torch.nn.functional.cosine_similarity(grads["bf16"].flatten(), grads["fp32"].flatten(), dim=0)
    assert cosine > 0.98


def test_bf16_runs_on_a_copy_and_leaves_the_callers_encoder_alone(vgg_objective_inputs: Any) -> None:
    encoder, photo, painting, _ = vgg_objective_inputs
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    stylizer, _ = objective_for(encoder, "bf16", photo, painting)
    assert isinstance(stylizer.features.encoder, torch.nn.Module)
    assert all(p.dtype == torch.bfloat16 for p in stylizer.features.encoder.parameters())
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in encoder.parameters())
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    # The features come out as the pass made them (the losses widen them to fp32, tested
    # above): a cast to fp32 here would cost a copy and make the Grams run in fp32.
    features = stylizer.features(photo)
    assert all(f.dtype == torch.bfloat16 for f in features.values())


def test_bf16_run_lowers_the_loss_like_fp32(vgg_objective_inputs: Any) -> None:
    encoder, photo, painting, _ = vgg_objective_inputs
    results = {}
    for precision in ("fp32", "bf16"):
        cfg = dataclasses.replace(build_settings("default").engine, precision=precision, scales=1, iterations=8, tolerance=0.0)
        results[precision] = Stylizer(encoder, [painting], cfg).run(photo)
    assert results["bf16"].image.dtype == torch.float32
    _, objective = objective_for(encoder, "fp32", photo, painting)
    with torch.no_grad():
        start, fp32, bf16 = (objective(x).item() for x in (photo, results["fp32"].image, results["bf16"].image))
    assert fp32 < 0.8 * start and bf16 < 0.8 * start
    assert bf16 == pytest.approx(fp32, rel=0.1)


# -- choosing the precision -----------------------------------------------------------------------


def test_auto_precision_follows_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    for amx, avx512_bf16, expected in ((True, False, "bf16"), (False, True, "bf16"), (True, True, "bf16"), (False, False, "fp32")):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        assert resolve_precision("auto", torch.device("cpu")) == expected, (amx, avx512_bf16)
    assert resolve_precision("auto", torch.device("mps")) == "fp32"
    # An Ampere or later GPU has bf16 tensor cores; a Turing one (7.5) only emulates bf16,
    # even where torch.cuda.is_bf16_supported() says yes.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for capability, expected in (((9, 0), "bf16"), ((8, 0), "bf16"), ((7, 5), "fp32")):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability, **k: c)
        assert resolve_precision("auto", torch.device("cuda")) == expected, capability
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_presets_choose_the_precision_automatically() -> None:
    for preset in ("fast", "default", "quality"):
        assert build_settings(preset).engine.precision == "auto"
    assert EngineConfig().precision == "fp32"
    with pytest.raises(ConfigError, match="'precision'"):
        build_settings("default", None, {"precision": "fp16"})


def test_fingerprint_counts_precision_but_not_compile() -> None:
    base = Settings(engine=EngineConfig())
    bf16 = Settings(engine=EngineConfig(precision="bf16"))
    auto = Settings(engine=EngineConfig(precision="auto"))
    compiled = Settings(engine=EngineConfig(compile=True))
    assert len({base.fingerprint(), bf16.fingerprint(), auto.fingerprint()}) == 3
    assert compiled.fingerprint() == base.fingerprint()


def test_compile_setting_compiles_the_feature_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[object] = []

    def fake_compile(fn: Any, **kwargs: Any) -> Any:
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    encoder = TinyEncoder()
    Stylizer(encoder, [stripes_image(32, 32)], engine())
    assert compiled == []
    result = Stylizer(encoder, [stripes_image(32, 32)], engine(compile=True)).run(smooth_image(24, 32))
    assert compiled == [encoder]
    assert result.iterations == 6


def test_with_config_rebuilds_the_pass_for_another_precision() -> None:
    stylizer = Stylizer(TinyEncoder(), [stripes_image(32, 32)], engine())
    first = stylizer.style_targets(32)
    same = stylizer.with_config(engine(iterations=2))
    assert same.features is stylizer.features and same.style_targets(32) is first
    other = stylizer.with_config(engine(precision="bf16"))
    assert other.precision == "bf16" and stylizer.precision == "fp32"
    assert other.style_targets(32) is not first


# -- one pass per iteration, batching ---------------------------------------------------------------


def test_each_iteration_costs_one_encoder_pass() -> None:
    encoder = TinyEncoder()
    content = smooth_image(24, 32)
    for optimizer in ("lbfgs", "adam"):
        encoder.calls.clear()
        Stylizer(encoder, [stripes_image(32, 32)], engine(optimizer=optimizer, iterations=7)).run(content)
        # One pass for the content target, one per iteration; the style once (32 px square).
        assert encoder.count((1, 3, 24, 32)) == 1 + 7, optimizer
        assert encoder.count((1, 3, 32, 32)) == 1


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_a_batch_gives_each_picture_what_it_gets_alone(optimizer: str) -> None:
    style = stripes_image(32, 32)
    a, b = smooth_image(24, 32), smooth_image(24, 32, phase=2.0)
    cfg = engine(optimizer=optimizer, learning_rate=0.05, iterations=8)
    alone = [Stylizer(TinyEncoder(), [style], cfg).run(x) for x in (a, b)]
    batch = Stylizer(TinyEncoder(), [style], cfg).run(torch.cat([a, b]))
    assert batch.image.shape == (2, 3, 24, 32)
    for i, single in enumerate(alone):
        # A batch may run the same arithmetic in another order (a convolution can pick another
        # kernel for another batch size), and eight L-BFGS steps magnify those last bits some
        # hundred times (a start moved by one float32 ulp ends 3e-5 away). A quarter of one
        # 8-bit level is invisible in a saved picture, and far below what one picture's
        # targets or gradient leaking into the other's does (0.1 and more).
        assert torch.allclose(batch.image[i : i + 1], single.image, atol=1e-3), i
        assert batch.item_losses[i] == pytest.approx(single.loss, rel=1e-3)
    assert batch.item_iterations == (8, 8)
    assert batch.loss == pytest.approx(sum(batch.item_losses))


def test_a_batch_from_noise_starts_each_picture_from_its_own_noise() -> None:
    style = stripes_image(32, 32)
    a, b = smooth_image(24, 32), smooth_image(24, 32, phase=2.0)
    cfg = engine(init="noise", iterations=4)
    alone = Stylizer(TinyEncoder(), [style], cfg).run(b)
    batch = Stylizer(TinyEncoder(), [style], cfg).run(torch.cat([a, b]))
    assert torch.allclose(batch.image[1:], alone.image, atol=1e-4)


def test_a_converged_picture_leaves_the_batch() -> None:
    style = stripes_image(32, 32)
    a, b = smooth_image(24, 32), smooth_image(24, 32, phase=2.0)
    noise = torch.rand(1, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    # Content loss only: the first picture starts at its optimum (loss 0, nothing to gain)
    # and stops after patience + 1 steps; the second starts from noise and goes on.
    cfg = engine(style_weight=0.0, iterations=12, tolerance=0.02, patience=2)
    encoder = TinyEncoder()
    result = Stylizer(encoder, [style], cfg).run(torch.cat([a, b]), init=torch.cat([a, noise]))
    first, second = result.item_iterations
    assert first == 3 and second > first
    assert result.iterations == second
    assert encoder.count((1, 3, 24, 32)) == second - first  # the rest ran without it
    assert torch.allclose(result.image[:1], a)
    alone = Stylizer(TinyEncoder(), [style], cfg).run(b, init=noise)
    assert alone.iterations == second
    assert torch.allclose(result.image[1:], alone.image, atol=1e-4)


def test_batch_with_colour_preservation_recolours_per_picture() -> None:
    style = stripes_image(32, 32)
    a, b = smooth_image(24, 32), 1.0 - smooth_image(24, 32, phase=1.0)
    cfg = engine(preserve_color="histogram", iterations=3)
    stylizer = Stylizer(TinyEncoder(), [style], cfg)
    both = stylizer.style_targets(32, torch.cat([a, b]))
    assert both["relu1_1"].shape == (2, 6, 6)
    assert torch.allclose(both["relu1_1"][1], stylizer.style_targets(32, b)["relu1_1"])
    alone = Stylizer(TinyEncoder(), [style], cfg).run(b)
    batch = Stylizer(TinyEncoder(), [style], cfg).run(torch.cat([a, b]))
    assert torch.allclose(batch.image[1:], alone.image, atol=1e-4)


# -- choosing the batch ---------------------------------------------------------------------------


def test_auto_batch_is_one_on_cpu_and_mps_and_a_number_is_kept() -> None:
    engine = build_settings("default").engine
    assert resolve_batch(0, torch.device("cpu"), 256, engine) == 1
    assert resolve_batch(0, torch.device("mps"), 256, engine) == 1
    assert resolve_batch(3, torch.device("cpu"), 256, engine) == 3


def test_auto_batch_on_cuda_fills_the_free_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # 60 iterations: the budget bounds how many L-BFGS pairs a picture keeps, so it is pinned here.
    engine = build_settings("default", None, {"iterations": 60}).engine
    free = {"bytes": 8 * GIB}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 80 * GIB))
    assert resolve_batch(0, torch.device("cuda"), 512, engine) == 3
    free["bytes"] = 70 * GIB
    assert resolve_batch(0, torch.device("cuda"), 512, engine) == 8
    assert resolve_batch(0, torch.device("cuda"), 2048, engine) == 2  # 16 times the pixels: 25 GiB each
    assert resolve_batch(2, torch.device("cuda"), 512, engine) == 2
    # A memory budget bounds the batch as it bounds the tiles: 6G holds what 8 GiB free did.
    assert resolve_batch(0, torch.device("cuda"), 512, dataclasses.replace(engine, max_memory="6G")) == 3


def test_image_memory_counts_activations_and_optimizer_state() -> None:
    default = build_settings("default").engine  # relu1_1 ... relu5_1, L-BFGS, 40 iterations at full size
    # Up to relu5_1, VGG19 makes as many floats as 610 maps of 512x512 (256 + 16 in block 1,
    # 128 + 8 in block 2, 128 + 4, 64 + 2, and 4): 610 MiB in fp32, twice with the backward
    # pass; then 40 L-BFGS pairs (no more than the iterations) of two 3x512x512 fp32
    # vectors, 6 MiB a pair.
    assert image_memory(512, default) == 2 * 610 * MIB + 40 * 6 * MIB
    longer = dataclasses.replace(default, iterations=220)
    assert image_memory(512, longer) == 2 * 610 * MIB + 100 * 6 * MIB  # at most LBFGS_HISTORY pairs
    shallow = EngineConfig(content_layer="relu1_1", style_layers=("relu1_1",), style_layer_weights=(1.0,), iterations=10)
    assert image_memory(8, shallow) == 2 * (64 + 64) * 64 * 4 + 10 * 2 * 3 * 64 * 4  # history <= iterations
    adam = dataclasses.replace(shallow, optimizer="adam")
    assert image_memory(8, adam) == 2 * (64 + 64) * 64 * 4 + 2 * 3 * 64 * 4  # two moments


def test_batch_for_memory_keeps_a_margin_and_stays_between_one_and_eight() -> None:
    per_image = 1820 * MIB
    assert batch_for_memory(8 * GIB, per_image) == 3  # 6 GiB of the 8 planned for
    assert batch_for_memory(2 * per_image, per_image) == 1  # two fit only without the margin
    assert batch_for_memory(80 * GIB, per_image) == 8
    assert batch_for_memory(GIB, per_image) == 1  # one picture is tried in any case


# -- L-BFGS in compact form -------------------------------------------------------------------------


def tiny_objective() -> tuple[Objective, torch.Tensor]:
    cfg = engine()
    stylizer = Stylizer(TinyEncoder(), [stripes_image(32, 32)], cfg)
    content = smooth_image(24, 32)
    return stylizer.objective(content), content


@pytest.mark.parametrize("history,steps", [(100, 12), (4, 12)])
def test_lbfgs_follows_torchs_lbfgs(history: int, steps: int) -> None:
    objective, start = tiny_objective()
    ours_x, torch_x = start.clone().requires_grad_(True), start.clone().requires_grad_(True)
    ours = LBFGS(ours_x, history)
    reference = torch.optim.LBFGS([torch_x], lr=1.0, max_iter=1, history_size=history,
                                  tolerance_grad=-1.0, tolerance_change=-1.0)
    for _ in range(steps):
        for x in (ours_x, torch_x):
            x.grad = None
            objective(x).backward()
        ours.step()
        reference.step(lambda: 0.0)
        # Float noise only (another method drifts by ~0.1); a dozen steps, because ReLU kinks
        # make any two float paths part eventually. Exactness: the two-loop test below.
        assert torch.allclose(ours_x, torch_x, atol=1e-3)
    assert not torch.allclose(ours_x, start, atol=1e-2)  # it did move
    assert len(ours.order) == min(history, steps - 1)


def two_loop(g: torch.Tensor, pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """The textbook two-loop recursion (Nocedal and Wright, algorithm 7.4)."""
    q, alphas = g.clone(), []
    for s, y in reversed(pairs):
        alphas.append(s.dot(q) / y.dot(s))
        q = q - alphas[-1] * y
    s_new, y_new = pairs[-1]
    r = y_new.dot(s_new) / y_new.dot(y_new) * q
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        r = r + s * (alpha - y.dot(r) / y.dot(s))
    return r


def times_inverse_hessian(opt: LBFGS, g: torch.Tensor, y: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """H g after taking in the pair (s, y), read through the optimizer's work block."""
    opt.work[0], opt.work[1], opt.work[2] = g, y, s
    return -opt._descent()


def test_lbfgs_compact_form_is_the_two_loop_recursion() -> None:
    gen = torch.Generator().manual_seed(0)
    n, history = 40, 3
    a = torch.randn(n, n, generator=gen, dtype=torch.float64)
    hessian = a @ a.T + n * torch.eye(n, dtype=torch.float64)
    opt = LBFGS(torch.zeros(n, dtype=torch.float64), history)
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for _ in range(7):  # past the history size: the oldest pairs are dropped in turn
        s = torch.randn(n, generator=gen, dtype=torch.float64)
        g = torch.randn(n, generator=gen, dtype=torch.float64)
        pairs = (pairs + [(s, hessian @ s)])[-history:]
        assert torch.allclose(times_inverse_hessian(opt, g, hessian @ s, s), two_loop(g, pairs), atol=1e-12)


def test_lbfgs_drops_a_pair_without_curvature() -> None:
    opt = LBFGS(torch.zeros(3, dtype=torch.float64), 5)
    g = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    s = torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64)
    assert torch.equal(times_inverse_hessian(opt, g, -s, s), g)  # y.s < 0: H stays the identity
    assert opt.order == []


def test_lbfgs_steps_in_its_two_blocks() -> None:
    """Every whole-picture vector L-BFGS keeps is in its history and its work block, made
    once: a step writes into them rather than keeping fresh copies (at 4000x3000 each copy
    is 144M)."""
    objective, start = tiny_objective()
    x = start.clone().requires_grad_(True)
    opt = LBFGS(x, 2)
    blocks = (opt.pairs.data_ptr(), opt.work.data_ptr())
    before = x.detach().clone()
    for _ in range(5):  # past the history: pairs are replaced in their slots
        x.grad = None
        objective(x).backward()
        opt.step()
    assert (opt.pairs.data_ptr(), opt.work.data_ptr()) == blocks
    whole = [name for name, value in vars(opt).items() if isinstance(value, torch.Tensor) and value.numel() >= x.numel()]
    assert sorted(whole) == ["pairs", "work", "x"]
    assert not torch.equal(x.detach(), before)


def test_a_level_keeps_no_optimizer_state_once_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """A level's pixels, best copies and L-BFGS pairs are freed when it returns, before the
    next level makes its own: only the loss histories outlive it."""
    import gc
    import weakref

    from nstpipe.engine.optimize import optimize_level

    made: list[weakref.ref[LBFGS]] = []
    real = LBFGS.__init__

    def init(self: LBFGS, x: torch.Tensor, history: int = 100) -> None:
        real(self, x, history)
        made.append(weakref.ref(self))

    monkeypatch.setattr(LBFGS, "__init__", init)
    objective, start = tiny_objective()
    outcome = optimize_level(objective, start, 3, engine(), torch.device("cpu"))
    gc.collect()
    assert len(made) == 1 and made[0]() is None
    assert [len(history) for history in outcome.histories] == [3]


def pseudo_huber_run(guarded: bool, steps: int = 60) -> list[float]:
    """L-BFGS on sum(sqrt(1 + (a x)^2)): its curvature falls away from the minimum (20), so
    a step sized by the curvature measured near it can fly far out."""
    gen = torch.Generator().manual_seed(0)
    scales = 5 * torch.logspace(-1, 1, 20, dtype=torch.float64)
    x = torch.randn(20, generator=gen, dtype=torch.float64).requires_grad_(True)
    opt, losses = LBFGS(x, 10), []
    for _ in range(steps):
        x.grad = None
        loss = torch.sqrt(1 + (scales * x) ** 2).sum()
        loss.backward()
        losses.append(loss.item())
        opt.step(loss=losses[-1] if guarded else None)
    return losses


def test_lbfgs_takes_back_an_overshooting_step() -> None:
    unguarded, guarded = pseudo_huber_run(False), pseudo_huber_run(True)
    assert max(unguarded) > 1e6 * unguarded[0]  # the problem is real: the steps run away
    assert guarded[0] > 150 and guarded[-1] < 20.5  # from 172 to near the minimum, 20


def test_lbfgs_after_an_overshoot_steps_again_from_the_accepted_point() -> None:
    x = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = LBFGS(x, 5)
    x.grad = torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64)
    opt.step(loss=1.0)  # first step: -g scaled to a unit L1 norm
    assert x.tolist() == [1.0, 0.0, 0.0]
    x.grad = torch.tensor([3.0, 0.0, 0.0], dtype=torch.float64)  # overshot: slope reversed
    opt.step(loss=5.0)
    # Back at 0, with the pair (s=1, y=4) kept: H g = g / 4, so -(-1)/4, halved: 0.125.
    assert x.tolist() == pytest.approx([0.125, 0.0, 0.0])
    assert len(opt.order) == 1


def test_lbfgs_reads_one_value_back_per_step(monkeypatch: pytest.MonkeyPatch) -> None:
    # On a GPU every value read back waits for the device; torch's two-loop reads ~2m.
    objective, start = tiny_objective()
    x = start.clone().requires_grad_(True)
    opt = LBFGS(x, 100)
    reads: list[int] = []
    real_float = torch.Tensor.__float__
    for step in range(6):
        x.grad = None
        objective(x).backward()

        def counted_float(t: torch.Tensor, step: int = step) -> float:
            reads.append(step)
            return real_float(t)

        monkeypatch.setattr(torch.Tensor, "__float__", counted_float)
        monkeypatch.setattr(torch.Tensor, "item", lambda t: pytest.fail("item() in a step"))
        monkeypatch.setattr(torch.Tensor, "tolist", lambda t: pytest.fail("tolist() in a step"))
        opt.step()
        monkeypatch.undo()
    assert reads == [1, 2, 3, 4, 5]  # none in the first step, one in each later

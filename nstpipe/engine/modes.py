"""Modes: what a run optimizes (a list of terms) and how it climbs the pyramid (a schedule)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import torch

from nstpipe.config import EngineConfig, half_size_read, smallest_side, style_terms
from nstpipe.engine.distribution import MeanCovTerm, SlicedTerm
from nstpipe.engine.halfsize import HalfSizeTerm
from nstpipe.engine.schedule import Schedule
from nstpipe.engine.terms import (
    ActivationTerm,
    ChannelTerm,
    ContentTerm,
    GramTerm,
    GuideTerm,
    RangePull,
    TemporalTerm,
    Term,
    TotalVariation,
)
from nstpipe.engine.transforms import Jitter


@dataclass(frozen=True)
class Mode:
    terms: tuple[Term[Any], ...]
    schedule: Schedule
    # What the encoder sees of the picture (None: the picture itself), e.g. a random jitter;
    # the terms that read the pixels alone still see them as they are.
    view: Callable[[torch.Tensor], torch.Tensor] | None = None

    @property
    def layers(self) -> tuple[str, ...]:
        """Every layer the terms read, in the terms' order; the encoder is cut after the deepest."""
        return tuple(dict.fromkeys(layer for term in self.terms for layer in term.layers))

    @property
    def needs_content(self) -> bool:
        return any(term.needs_content for term in self.terms)

    @property
    def min_side(self) -> int:
        """The smallest width or height that a level may have (see :func:`nstpipe.config.smallest_side`)."""
        return smallest_side(self.layers) if self.layers else 1


def gram_terms(config: EngineConfig) -> list[Term[Any]]:
    """style_weight * share_k * w_l * L_k_l for each style term k of ``style_loss`` and each
    style layer l; the layer weights w_l sum to one."""
    total = sum(config.style_layer_weights)
    layer_weights = [w / total for w in config.style_layer_weights] if total > 0 else list(config.style_layer_weights)
    terms: list[Term[Any]] = []
    for kind, share in style_terms(config.style_loss):
        if share == 0:
            continue
        for layer, w in zip(config.style_layers, layer_weights):
            weight = config.style_weight * share * w
            if kind == "gram":
                terms.append(GramTerm(layer, weight))
            elif kind == "meancov":
                terms.append(MeanCovTerm(layer, weight))
            else:
                terms.append(SlicedTerm(layer, weight, config.sliced_directions, config.seed, config.energy_power))
    return terms


def style_terms_at_sizes(config: EngineConfig) -> list[Term[Any]]:
    """:func:`gram_terms`, and those of ``half_size_layers`` (all where empty) again on the
    picture at half its size at the ``half_size_style`` share of the style weight
    (:class:`HalfSizeTerm`), where that is on."""
    terms = gram_terms(config)
    if config.half_size_style > 0:
        half = replace(config, style_weight=config.style_weight * config.half_size_style)
        kept = set(half_size_read(config))
        terms.append(HalfSizeTerm([t for t in gram_terms(half) if kept.issuperset(t.layers)], config.min_scale_size))
    return terms


def style_transfer(config: EngineConfig) -> Mode:
    """content_weight * L_content + style_weight * sum_l w_l * L_style_l + tv_weight * L_tv
    (+ temporal_weight * L_temporal for a video frame with a warped predecessor), plus the
    pull back into [0, 1]; the layer weights w_l sum to one."""
    terms: list[Term[Any]] = [ContentTerm(config.content_layer, config.content_weight), *style_terms_at_sizes(config)]
    terms += [TotalVariation(config.tv_weight), TemporalTerm(config.temporal_weight), RangePull()]
    return Mode(tuple(terms), Schedule.of(config))


def texture(config: EngineConfig, tileable: bool = False) -> Mode:
    """Texture synthesis (Gatys, Ecker and Bethge 2015): style_weight * sum_l w_l * L_style_l
    + tv_weight * L_tv, plus the pull back into [0, 1], from noise and coarse to fine; no
    content term, so a run needs no photo, only a size.

    The style terms are style transfer's (the same relative Gram errors and layer weights),
    so a weight means the same in both modes. Each picture of a batch starts from noise of
    its own seed (seed + k), so that variations differ. ``tileable``: the total variation
    and the pyramid's upsampling wrap across the edges (the encoder must wrap too: see
    :meth:`nstpipe.engine.vgg.VGGFeatures.wrapped`).
    """
    terms = [*style_terms_at_sizes(config), TotalVariation(config.tv_weight, wrap=tileable), RangePull()]
    schedule = replace(Schedule.of(config), init="noise", content_mix=0.0, spread_seeds=True, wrap=tileable)
    return Mode(tuple(terms), schedule)


def visualize(config: EngineConfig, layer: str, channels: Sequence[int], jitter: Jitter | None = None) -> Mode:
    """Feature visualization: minus the mean activation of a channel of ``layer`` +
    tv_weight * L_tv, plus the pull back into [0, 1], from noise and coarse to fine.

    ``channels``: one index, or one per picture of the batch (picture i shows channel i's).
    Every picture starts from the same noise (the seed's), so a picture of a batch is the
    one made alone. ``jitter``: the random transformation the encoder sees the picture
    through at each step (drawn anew per step, so the objective is stochastic).
    """
    terms: list[Term[Any]] = [ChannelTerm(layer, channels), TotalVariation(config.tv_weight), RangePull()]
    schedule = replace(Schedule.of(config), init="noise", content_mix=0.0, spread_seeds=False)
    return Mode(tuple(terms), schedule, jitter)


def guided(config: EngineConfig, layers: Sequence[str], guide: torch.Tensor) -> list[Term[Any]]:
    """A guided dream's terms: the notebook's guide term, weighted by the "gram" share of
    ``style_loss`` (1 where it is left out), plus a distribution term towards the guide's
    features at each dream layer for each other kind named, style_weight * share over the
    layers: the dream then takes on the guide's whole feature distribution, not only its
    best-matching features."""
    shares = dict(style_terms(config.style_loss))
    terms: list[Term[Any]] = [GuideTerm(layers, guide, shares.get("gram", 0.0))] if shares.get("gram", 0.0) > 0 else []
    for kind, share in shares.items():
        if kind == "gram" or share == 0:
            continue
        weight = config.style_weight * share / len(layers)
        for layer in layers:
            sliced = kind == "sliced"
            terms.append(SlicedTerm(layer, weight, config.sliced_directions, config.seed) if sliced else MeanCovTerm(layer, weight))
    return terms


def dream(
    config: EngineConfig,
    layers: Sequence[str],
    channels: Sequence[int] = (),
    guide: torch.Tensor | None = None,
    jitter: Jitter | None = None,
    octave_scale: float = 1.4,
) -> Mode:
    """DeepDream (Mordvintsev et al. 2015): minus the gain of ``layers``' activations (of
    ``channels`` only, where given) over the photo's, or with a ``guide``, minus the match
    to the guide's features; plus the temporal term in a video. Climbed from the photo
    over ``config.scales`` octaves, each ``octave_scale`` times the size of the one before,
    each starting from the photo at its size plus what the coarser octaves dreamed
    (:attr:`Schedule.detail`), seen through ``jitter`` at each step.

    The steps are the optimizer's (``normalized`` in the dream preset: a fixed mean size,
    as the original takes them); the pixels are clamped to [0, 1] after each, so no range
    pull is needed.
    """
    if guide is None:
        climb: list[Term[Any]] = [ActivationTerm(layers, channels)]
    else:
        climb = guided(config, layers, guide)
    terms: list[Term[Any]] = [*climb, TemporalTerm(config.temporal_weight)]
    schedule = replace(Schedule.of(config), init="content", content_mix=0.0, ratio=octave_scale, detail=True)
    return Mode(tuple(terms), schedule, jitter)

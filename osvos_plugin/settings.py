"""A render's settings: plugin.json's parameters, resolved and validated once, typed.

``RenderSettings.resolve(params)`` overlays what the user set on the manifest's defaults and checks every
value against its range; the object then hands out the fine-tuning, self-training and inference configs
and the provenance record of a fine-tuned model, so no other code maps parameter names to configs. A new
node parameter is a line in plugin.json, a field here, and its use in one of the methods below.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from osvos_contract.manifest import ManifestError, load_manifest

from .augment import LARGE_OBJECT_SHARE
from .errors import InputError
from .finetune import FinetuneConfig
from .inference import InferenceConfig
from .selftrain import SelfTrainConfig

# Learn Object Anywhere: the share of fine-tuning samples that show the object moved (docs/experiments.md, session 23).
LEARN_ANYWHERE_SHARE = 0.5
# Fine-tuning options left out of the engine recipe while off (the value they hold then), with the fields that
# only qualify them: adding an option that is off changes nothing a render learns, so it must not make a
# resume fine-tune and render every matte again (docs/experiments.md, session 30).
RECIPE_WHEN_ON: tuple[tuple[tuple[str, ...], float, tuple[str, ...]], ...] = (
    (("iou_weight",), 0.0, ()),
    (("augment", "warp"), 0.0, ()),
    (("small_object_lr",), 1.0, ("small_object_lr_below",)),
    (("warmup",), 0.0, ()),
    (("class_balance",), 1.0, ()),
)


@dataclass(frozen=True)
class RenderSettings:
    """Every plugin.json parameter, by name (their help and ranges are in plugin.json)."""

    mask_frame: int | None
    frames: str
    input_colorspace: str
    iterations: int
    learning_rate: float
    optimizer: str
    learn_anywhere: bool
    object_networks: str
    object_overlap: bool
    max_objects: int
    keep_model: bool
    continue_iterations: int
    self_train_iterations: int
    self_train_frames: int
    seed: int
    process_size: int
    large_object_scale: float
    grown_object_rescale: bool
    flip_average: bool
    second_pass_size: int
    soft_matte: bool
    threshold: float
    core_threshold: float
    output_format: str
    edge_refine: bool
    edge_grow: float
    edge_softness: float
    boundary_snap: bool
    device: str
    precision: str
    batch_size: int
    threads: int

    @classmethod
    def resolve(cls, params: dict[str, Any] | None = None) -> RenderSettings:
        """The manifest's defaults overlaid with ``params`` (plugin.json names), each validated: ValueError
        naming the parameter otherwise (``InputError``)."""
        try:
            values = load_manifest().resolve(params)
        except ValueError as e:
            raise InputError(str(e)) from None
        names = {f.name for f in fields(cls)}
        if set(values) != names:
            raise ManifestError(
                f"plugin.json and RenderSettings disagree: {sorted(set(values) ^ names)}; a parameter added to "
                "one must be added to the other."
            )
        smallest = int(load_manifest().parameter("process_size").min)
        if 0 < values["second_pass_size"] < smallest:  # the manifest's range has to let 0 (off) through
            raise InputError(f"second_pass_size {values['second_pass_size']}: 0 (off) or at least {smallest} px, "
                             "the smallest Processing Size; set it to 0 or a size such as 560")
        return cls(**values)

    def as_params(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def large_size(self) -> int:
        """The processing size for an object painted large (Large Object Scale), never above the largest
        Processing Size plugin.json allows."""
        top = int(load_manifest().parameter("process_size").max)
        return max(self.process_size, min(round(self.process_size * self.large_object_scale), top))

    def for_object(self, share: float | None, plate_long_side: int | None = None) -> RenderSettings:
        """These settings for an object painted over ``share`` of the frame (the smallest object's, with
        several; None: unknown): from ``LARGE_OBJECT_SHARE`` up, Processing Size times Large Object Scale, but
        never above the plate's own long side (an enlarged plate shows the network nothing new and costs
        time), with the scale then 1 so that the settings say what runs and are not scaled twice."""
        if self.large_object_scale <= 1.0 or share is None or share < LARGE_OBJECT_SHARE:
            return self
        return self.made_at(self.large_size if plate_long_side is None else min(self.large_size, plate_long_side))

    def made_at(self, size: int | None) -> RenderSettings:
        """These settings for a model fine-tuned at ``size`` (its record): that size where Large Object Scale
        could have chosen it, i.e. above Processing Size and at most ``large_size``; else unchanged."""
        if self.large_object_scale <= 1.0 or not isinstance(size, int):
            return self
        if not self.process_size < size <= self.large_size:
            return self
        return replace(self, process_size=size, large_object_scale=1.0)

    def finetune(self) -> FinetuneConfig:
        cfg = FinetuneConfig(
            iterations=self.iterations, learning_rate=self.learning_rate, optimizer=self.optimizer, seed=self.seed,
            process_size=self.process_size, device=self.device, precision=self.precision,
            object_networks=self.object_networks,
        )
        if self.learn_anywhere:  # half the samples show the object moved (AugmentConfig.move)
            cfg = replace(cfg, augment=replace(cfg.augment, move=LEARN_ANYWHERE_SHARE))
        return cfg

    def self_train(self) -> SelfTrainConfig:
        return SelfTrainConfig(
            iterations=self.self_train_iterations, seed=self.seed, process_size=self.process_size,
            device=self.device, precision=self.precision, flip_average=self.flip_average,
        )

    def inference(self) -> InferenceConfig:
        return InferenceConfig(
            process_size=self.process_size, batch_size=self.batch_size, soft=self.soft_matte,
            threshold=self.threshold, core_threshold=self.core_threshold, flip_average=self.flip_average,
            device=self.device, precision=self.precision,
            edge_refine=self.edge_refine, edge_grow=self.edge_grow, edge_softness=self.edge_softness,
            boundary_snap=self.boundary_snap, overlap=self.object_overlap, grown_rescale=self.grown_object_rescale,
            second_pass_size=self.second_pass_size,
        )

    def engine_recipe(self) -> dict:
        """The fine-tuning settings that are no node parameter (the augmentation, frozen stages, schedule, ...):
        a new engine default changes what a render learns without a parameter saying so, so a kept model or a
        matte made under another recipe must not pass for this one's."""
        node = {f.name for f in fields(self)}  # the node parameters

        def engine(cfg: Any) -> dict:
            out = {k: v for k, v in asdict(cfg).items() if k not in node}
            for (*parents, name), off, qualifiers in RECIPE_WHEN_ON:
                holder = out
                for key in parents:
                    holder = holder.get(key, {})
                if name in holder and holder[name] == off:
                    for key in (name, *qualifiers):
                        holder.pop(key, None)
            if "coarse_size" in out and not cfg.coarse_steps:
                out["coarse_size"] = 0  # no coarse steps at this size: the recipe of a render before they existed
            return out

        recipe = {"finetune": engine(self.finetune())}
        if self.self_train_iterations:
            recipe["self_train"] = engine(self.self_train())
        return json.loads(json.dumps(recipe))  # tuples as lists: the form a record reads back in

    def provenance(self, parent: str, source: str, keyframes: list[list], self_train_frames: list[int]) -> dict:
        """What a saved fine-tuned model records about how it was made."""
        cfg = self.finetune()
        return {
            "kind": "fine-tuned", "parent": parent, "source": source, "keyframes": keyframes,
            "iterations": cfg.iterations, "learning_rate": cfg.learning_rate, "seed": cfg.seed,
            "scales": list(cfg.augment.scales), "zoom_to": cfg.augment.zoom_to, "zoom_max": cfg.augment.zoom_max,
            "move": cfg.augment.move,
            "close_crop": [cfg.augment.close_crop, cfg.augment.close_crop_max, cfg.augment.close_crop_below],
            "hard_negatives": [cfg.hard_negatives, cfg.hard_negatives_below],
            "small_object_lr": [cfg.small_object_lr, cfg.small_object_lr_below],
            "coarse_to_fine": [cfg.coarse_size, cfg.coarse_steps] if cfg.coarse_steps else [],
            "self_train_iterations": self.self_train_iterations if self_train_frames else 0,
            "self_train_frames": list(self_train_frames),
            "process_size": self.process_size,
        }

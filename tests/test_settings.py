import json
from dataclasses import replace
from pathlib import Path

import pytest

from osvos_contract.manifest import MANIFEST_PATH, ManifestError, load_manifest
from osvos_plugin.errors import InputError
from osvos_plugin.settings import RenderSettings

REPO_MANIFEST = MANIFEST_PATH.resolve()


def test_package_manifest_is_the_repo_plugin_json():
    assert REPO_MANIFEST == (Path(__file__).parents[1] / "plugin.json").resolve()
    assert load_manifest().path and Path(load_manifest().path).resolve() == REPO_MANIFEST
    data = json.loads(REPO_MANIFEST.read_text())
    assert [i["name"] for i in data["inputs"]] == ["Source", "Mask"]
    assert [o["name"] for o in data["outputs"]] == ["Matte"]


def test_every_parameter_is_typed_with_help_and_a_valid_default():
    m = load_manifest()
    assert len({p.name for p in m.parameters}) == len(m.parameters)
    for p in m.parameters:
        assert p.help and p.label and p.type in ("int", "float", "bool", "string", "choice")
        if p.type == "choice":
            assert p.default in p.choices
        if p.type in ("int", "float") and p.default is not None:
            assert p.min <= p.default <= p.max


def test_resolve_validates_types_and_ranges():
    m = load_manifest()
    resolved = m.resolve({"iterations": "50", "soft_matte": "on"})
    assert resolved["iterations"] == 50 and resolved["soft_matte"] is True
    assert resolved["threshold"] == m.parameter("threshold").default
    with pytest.raises(ValueError, match="threshold"):
        m.resolve({"threshold": 1.5})
    with pytest.raises(ValueError, match="device"):
        m.resolve({"device": "tpu"})
    with pytest.raises(ValueError, match="unknown parameters: nope"):
        m.resolve({"nope": 1})


def test_cli_flags_defaults_and_help_come_from_the_manifest():
    from osvos_plugin.cli.render import build_parser

    parser = build_parser()
    actions = {a.dest: a for a in parser._actions}
    for p in load_manifest().parameters:
        action = actions[p.name]
        assert p.flag in action.option_strings
        shown = "default: none" if p.default in (None, "") else f"default: {p.default}"
        shown_help = action.help.replace("%%", "%")  # escaped for argparse, which prints "%%" as "%"
        assert p.help in shown_help and shown in shown_help
        if p.type == "choice":
            assert tuple(action.choices) == p.choices
    args = parser.parse_args(["plate.####.exr", "--mask", "m.png", "-o", "out.####.exr", "--iterations", "12"])
    assert args.iterations == 12 and args.threshold is None  # unset: the manifest default applies later


def test_versions_agree():
    import tomllib

    import osvos_plugin

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == load_manifest().version == osvos_plugin.__version__


def test_settings_hand_out_the_configs_a_render_uses():
    s = RenderSettings.resolve({"iterations": "12", "soft_matte": True, "threshold": 0.6, "process_size": 320,
                                "self_train_iterations": 7, "seed": 3, "flip_average": False})
    ft, st, inf = s.finetune(), s.self_train(), s.inference()
    assert (ft.iterations, ft.seed, ft.process_size) == (12, 3, 320)
    assert (st.iterations, st.seed, st.process_size, st.flip_average) == (7, 3, 320, False)
    assert (inf.soft, inf.threshold, inf.process_size, inf.flip_average) == (True, 0.6, 320, False)
    assert inf.batch_size == load_manifest().parameter("batch_size").default
    assert (inf.edge_refine, inf.edge_grow, inf.edge_softness) == (True, 0.0, 1.0)  # plate edges, anti-aliased
    edges = RenderSettings.resolve({"edge_refine": "on", "edge_grow": "-2.5", "edge_softness": 3}).inference()
    assert (edges.edge_refine, edges.edge_grow, edges.edge_softness) == (True, -2.5, 3.0)
    record = s.provenance("parent.safetensors", "plate.####.exr", [["m.png", 1001]], [1010, 1020])
    assert record["iterations"] == 12 and record["self_train_iterations"] == 7
    assert record["self_train_frames"] == [1010, 1020] and record["keyframes"] == [["m.png", 1001]]
    assert s.provenance("p", "s", [], [])["self_train_iterations"] == 0  # nothing self-trained


def test_settings_are_validated_and_frozen():
    with pytest.raises(InputError, match="threshold: 1.5 is outside"):
        RenderSettings.resolve({"threshold": 1.5})
    with pytest.raises(InputError, match="unknown parameters: nope"):
        RenderSettings.resolve({"nope": 1})
    with pytest.raises(InputError, match="edge_softness"):
        RenderSettings.resolve({"edge_softness": -1})
    with pytest.raises(InputError, match="edge_grow"):
        RenderSettings.resolve({"edge_grow": 51})
    s = RenderSettings.resolve()
    assert s.as_params() == load_manifest().resolve()
    with pytest.raises(AttributeError):
        s.iterations = 3  # frozen: settings are decided once


def test_a_parameter_missing_from_the_settings_is_caught(tmp_path, monkeypatch):
    data = json.loads(REPO_MANIFEST.read_text())
    data["parameters"].append({"name": "matte_blur", "label": "Matte blur", "type": "float", "default": 0.0,
                               "min": 0.0, "max": 1.0, "help": "new"})
    path = tmp_path / "plugin.json"
    path.write_text(json.dumps(data))
    monkeypatch.setenv("OSVOS_PLUGIN_JSON", str(path))
    with pytest.raises(ManifestError, match="matte_blur"):
        RenderSettings.resolve()


def test_library_configs_take_their_defaults_from_the_manifest():
    """Code that calls the engine directly gets what a render gets."""
    from osvos_plugin.finetune import FinetuneConfig
    from osvos_plugin.inference import InferenceConfig
    from osvos_plugin.selftrain import SelfTrainConfig

    s = RenderSettings.resolve()
    assert FinetuneConfig() == s.finetune() and InferenceConfig() == s.inference()
    assert SelfTrainConfig().flip_average == s.flip_average


def test_an_object_painted_large_runs_at_large_object_scale():
    s = RenderSettings.resolve({})
    assert (s.process_size, s.large_size) == (480, 854)  # a 480p plate's own size
    assert s.for_object(0.039) is s and s.for_object(None) is s  # painted small, or not known: as set
    big = s.for_object(0.04)
    assert (big.process_size, big.large_object_scale) == (854, 1.0)
    assert big.finetune().process_size == big.self_train().process_size == big.inference().process_size == 854
    assert big.for_object(0.5) == big  # never scaled twice
    assert RenderSettings.resolve({"process_size": 64}).for_object(0.5).process_size == 114
    assert RenderSettings.resolve({"process_size": 3000}).for_object(0.5).process_size == 4096  # the manifest's top
    off = RenderSettings.resolve({"large_object_scale": 1.0})
    assert off.for_object(0.9) is off
    # never above the plate's long side: a 640x360 plate runs at 640, a plate at or under 480 as set
    assert s.for_object(0.5, 640).process_size == 640 and s.for_object(0.5, 1920).process_size == 854
    assert s.for_object(0.5, 480) is s and s.for_object(0.5, 320) is s
    # a loaded model's record: the size Large Object Scale could have chosen, else Processing Size
    assert s.made_at(640).process_size == 640 and s.made_at(854).process_size == 854
    assert s.made_at(855) is s and s.made_at(480) is s and s.made_at(None) is s and off.made_at(854) is off
    with pytest.raises(InputError, match="large_object_scale"):
        RenderSettings.resolve({"large_object_scale": 0.5})


def test_an_object_painted_large_learns_its_first_half_at_the_parents_size():
    """Coarse to fine runs where the network runs above the parents' 480 and nowhere else; where it does not
    run, the recipe a resume compares is the one before it existed (coarse_size 0), so an object painted
    small keeps its kept model and mattes after this update, and one painted large is learnt again."""
    s = RenderSettings.resolve({})
    small, big = s.finetune(), s.for_object(0.5).finetune()
    assert (small.process_size, small.coarse_steps) == (480, 0)
    assert (big.process_size, big.coarse_size, big.coarse_steps) == (854, 480, 150)
    assert s.engine_recipe()["finetune"]["coarse_size"] == 0
    assert s.for_object(0.5).engine_recipe()["finetune"]["coarse_size"] == 480
    record = s.for_object(0.5).provenance("p", "s", [], [])
    assert record["coarse_to_fine"] == [480, 150] and s.provenance("p", "s", [], [])["coarse_to_fine"] == []
    assert RenderSettings.resolve({"process_size": 640, "large_object_scale": 1.0}).finetune().coarse_steps == 150
    assert RenderSettings.resolve({"process_size": 64}).for_object(0.5).finetune().coarse_steps == 0  # 114 px
    assert RenderSettings.resolve({"iterations": 40}).for_object(0.5).finetune().coarse_steps == 20


def test_options_kept_for_experiments_change_the_engine_recipe_only_when_on(monkeypatch):
    """The Lovász hinge, the warp, the warm-up and a partial class balance (off) leave the recipe a resume
    compares as it was before they existed, so a kept model and its mattes still serve; turned on, they make a
    recipe of their own."""
    from dataclasses import fields as dc_fields

    from osvos_plugin.augment import AugmentConfig
    from osvos_plugin.finetune import FinetuneConfig

    s = RenderSettings.resolve({})
    recipe = s.engine_recipe()["finetune"]
    node = {f.name for f in dc_fields(RenderSettings)}
    assert set(recipe) == {f.name for f in dc_fields(FinetuneConfig)} - node - {"iou_weight", "warmup", "class_balance"}
    assert set(recipe["augment"]) == {f.name for f in dc_fields(AugmentConfig)} - {"warp"}
    assert recipe["augment"]["move"] == 0.0  # the other options stay in, off or on, as before
    made = RenderSettings.finetune
    monkeypatch.setattr(RenderSettings, "finetune",
                        lambda self: replace(made(self), iou_weight=0.5, warmup=0.1, class_balance=0.5,
                                             augment=replace(made(self).augment, warp=0.05)))
    on = s.engine_recipe()["finetune"]
    assert on["iou_weight"] == 0.5 and on["warmup"] == 0.1 and on["class_balance"] == 0.5
    assert on["augment"]["warp"] == 0.05
    assert {k: v for k, v in on.items() if k not in ("iou_weight", "warmup", "class_balance")} != recipe  # the warp too


def test_the_small_objects_learning_rate_is_in_the_recipe_unless_every_object_learns_at_the_learning_rate(
        monkeypatch):
    """Off (1: every object at the Learning Rate), the small objects' rate and the share it starts below leave
    the recipe as it was before they existed; any other factor, or another share, is a recipe of its own (a
    resume then fine-tunes afresh)."""
    made = RenderSettings.finetune
    s = RenderSettings.resolve({})

    def recipe(**fields):
        monkeypatch.setattr(RenderSettings, "finetune", lambda self: replace(made(self), **fields))
        return s.engine_recipe()["finetune"]

    off = recipe(small_object_lr=1.0)
    assert "small_object_lr" not in off and "small_object_lr_below" not in off
    assert "hard_negatives_below" in off  # the share the hard negatives start below is their own
    half = recipe(small_object_lr=0.5)
    assert (half["small_object_lr"], half["small_object_lr_below"]) == (0.5, 0.04)
    assert {k: v for k, v in half.items() if not k.startswith("small_object_lr")} == off
    assert recipe(small_object_lr=0.5, small_object_lr_below=0.02) != half != recipe(small_object_lr=0.25)

import json

import pytest

from osvos_plugin.manifest import MANIFEST_PATH, load_manifest

REPO_MANIFEST = MANIFEST_PATH.resolve()


def test_package_manifest_is_the_repo_plugin_json():
    assert REPO_MANIFEST == (MANIFEST_PATH.parents[1] / "plugin.json").resolve()
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
        assert p.help in action.help and shown in action.help
        if p.type == "choice":
            assert tuple(action.choices) == p.choices
    args = parser.parse_args(["plate.####.exr", "--mask", "m.png", "-o", "out.####.exr", "--iterations", "12"])
    assert args.iterations == 12 and args.threshold is None  # unset: the manifest default applies later


def test_versions_agree():
    import tomllib

    import osvos_plugin

    pyproject = tomllib.loads((MANIFEST_PATH.parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == load_manifest().version == osvos_plugin.__version__


def test_library_configs_default_to_the_manifest():
    """Code that calls the engine directly gets what a render gets: the config dataclasses' defaults are
    plugin.json's for every parameter they share."""
    from dataclasses import MISSING, fields

    from osvos_plugin.finetune import FinetuneConfig
    from osvos_plugin.inference import InferenceConfig
    from osvos_plugin.selftrain import SelfTrainConfig

    defaults = load_manifest().defaults()
    renames = {"soft": "soft_matte"}
    checked = 0
    for cls in (FinetuneConfig, InferenceConfig):
        for f in fields(cls):
            name = renames.get(f.name, f.name)
            if name in defaults and f.default is not MISSING:
                assert f.default == defaults[name], f"{cls.__name__}.{f.name}: {f.default!r}, not {defaults[name]!r}"
                checked += 1
    assert SelfTrainConfig().flip_average == defaults["flip_average"]
    assert checked >= 10

import pytest

from stems.config import Config, ConfigError, STFTConfig, load_config


def test_defaults_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  widths: [8, 16, 32]\ntrain:\n  lr: 0.01\n")
    config = load_config(path, ["train.steps=7", "stft.hop_length=512"])
    assert config.model.widths == (8, 16, 32)
    assert config.train.lr == 0.01 and config.train.steps == 7 and config.stft.hop_length == 512
    assert load_config() == Config()
    assert load_config(None, ["model.dilations=[1, 2, 4]"]).model.dilations == (1, 2, 4)


def test_exponents_without_a_dot_are_numbers(tmp_path):
    """YAML 1.1 reads 1e-3 as a string; the docs' own `--set train.lr=1e-3` (docs/cli.md) must work."""
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 5e-4\n")
    assert load_config(path).train.lr == 5e-4
    assert load_config(None, ["train.lr=1e-3"]).train.lr == 1e-3


def test_shipped_configs_load():
    for name in ("default", "lowlatency"):
        load_config(f"configs/{name}.yaml")


@pytest.mark.parametrize("override,message", [
    ("train.stepz=3", "unknown config key 'train.stepz'"),
    ("train.steps=many", "'train.steps' must be an integer"),
    ("train.lr=fast", "'train.lr' must be a number, got 'fast'"),
    ("train.lr=nan", "'train.lr' must be a number, got 'nan'"),
    ("model.widths=3", "'model.widths' must be a list"),
    ("model.dilations=[1, x, 2]", "'model.dilations' must be an integer"),
    ("model.side_input=true", "unknown config key 'model.side_input'"),
    ("model.dilations=[1, 0]", "must be 1 or more"),
    ("train.rendered_share=1.0", "train.rendered_share must be in"),
    ("train.vocals_level_db=[3, -18]", "train.vocals_level_db must be .low, high. with low <= high"),
    ("train.vocals_level_db=[-18]", "train.vocals_level_db must be"),
    ("train.band_limits=[data/mir-1k]", "train.band_limits items must be FOLDER=HZ"),
    ("train.band_limits=[data/mir-1k=high]", "train.band_limits items must be FOLDER=HZ"),
    ("train.band_limits=[data/mir-1k=-8000]", "train.band_limits items must be FOLDER=HZ"),
    ("train.band_limited_mix=cut", "train.band_limited_mix must be full or limited"),
    ("train.accompanied_share=1.0", "train.accompanied_share must be in"),
    ("train.band_limits=[data/elsewhere=8000]", "train.band_limits names data/elsewhere, which is in none of"),
    ("train=3", "'train' must be a mapping"),
    ("nokey", "must look like key.sub=value"),
])
def test_bad_keys_and_types_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)


def test_a_repeated_key_is_refused_naming_the_file_key_and_line(tmp_path):
    """Plain YAML keeps the last of two equal keys and drops the first without a word."""
    path = tmp_path / "twice.yaml"
    path.write_text("model: fast\ntrain:\n  steps: 3\nmodel:\n  widths: [8, 16, 32]\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: duplicate key 'model' \(line 4\)"):
        load_config(path)
    path.write_text("train:\n  steps: 3\n  lr: 0.1\n  steps: 4\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: duplicate key 'steps' \(line 4\)"):
        load_config(path)


def test_hop_must_divide_n_fft():
    with pytest.raises(ConfigError, match="multiple"):
        STFTConfig(n_fft=2048, hop_length=1000)

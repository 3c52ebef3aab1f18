"""The parameter registry, presets and the generated parameter docs."""

import pathlib

import numpy as np
import pytest

from auracore.control.cli import params_markdown
from auracore.control.cmd_render import parse_assignments
from auracore.offline.params import PresetError, build_vector, load_preset, preset_names
from auracore.kernels import params as P

ROOT = pathlib.Path(__file__).resolve().parents[1]

DESIGN_IDS = ["eq.3.gain_db", "eq.3.freq_hz", "eq.3.q", "comp.threshold_db", "comp.ratio", "comp.attack_ms",
              "comp.release_ms", "comp.knee_db", "comp.makeup_db", "width.amount", "input.gain_db",
              "output.gain_db", "loudness.target_lufs", "loudness.auto", "limiter.ceiling_dbtp",
              "limiter.release_ms", "ai.enabled", "ai.amount", "bypass"]


def test_registry_has_the_design_ids_and_sane_ranges():
    for pid in DESIGN_IDS:
        assert pid in P.INDEX
    for p in P.PARAMS:
        assert p.minimum <= p.default <= p.maximum, p.id
        assert p.id == p.id.lower() and " " not in p.id
    assert len(P.INDEX) == len(P.PARAMS) == P.N_PARAMS
    assert P.lookup("eq.3.gain_db").osc_address == "/auracore/eq/3/gain_db"


def test_coerce_clamps_and_rejects():
    assert P.coerce("eq.3.gain_db", 40) == (18.0, True)
    assert P.coerce("loudness.auto", "on") == (1.0, False)
    for bad in ("nan", float("inf"), "abc", None):
        with pytest.raises(P.ParamError):
            P.coerce("eq.3.gain_db", bad)
    with pytest.raises(P.ParamError, match="did you mean"):
        P.lookup("eq.3.gain")
    with pytest.raises(P.ParamError, match="out of range"):
        P.check_in_range("limiter.ceiling_dbtp", 3)


@pytest.mark.parametrize("name,target,ceiling", [("streaming", -14, -1), ("podcast", -16, -1),
                                                   ("broadcast", -23, -1), ("club", -9, -0.3)])
def test_shipped_presets_hit_their_specs(name, target, ceiling):
    values = load_preset(name)
    assert values["loudness.target_lufs"] == target
    assert values["limiter.ceiling_dbtp"] == ceiling
    assert values["loudness.auto"] == 1.0


def test_preset_files_and_errors(tmp_path):
    assert set(preset_names()) >= {"neutral", "streaming", "podcast", "broadcast", "club"}
    user = tmp_path / "mine.toml"
    user.write_text('"comp.ratio" = 4\n[eq.3]\ngain_db = 2.5\n')
    vec = build_vector(str(user), parse_assignments(["eq.3.gain_db=-1"]))
    assert vec[P.INDEX["eq.3.gain_db"]] == -1.0 and vec[P.INDEX["comp.ratio"]] == 4.0
    assert np.array_equal(build_vector(None, {}), P.default_vector())
    bad = tmp_path / "bad.toml"
    bad.write_text("[eq.3\n")
    with pytest.raises(PresetError, match="not valid TOML"):
        load_preset(str(bad))
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[eq.9]\ngain_db = 1\n")
    with pytest.raises(PresetError, match="unknown parameter id 'eq.9.gain_db'"):
        load_preset(str(unknown))
    with pytest.raises(PresetError, match="unknown preset"):
        load_preset("loudest")


def test_parameter_docs_are_generated_and_current():
    doc = (ROOT / "docs" / "parameters.md").read_text()
    assert doc == params_markdown(), "docs/parameters.md is stale: run `auracore params > docs/parameters.md`"
    for p in P.PARAMS:
        assert f"`{p.id}`" in doc

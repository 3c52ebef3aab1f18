"""The Python API (`import auracore`): Params, Chain, Meter, analyze, load/save, render, the
error root, and the README's examples, run as they are written."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import auracore
from auracore.kernels import params as P
from auracore.offline.demo import demo_track
from auracore.realtime.engine import Engine

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    """6 s of the music-like demo track at 44.1 kHz, stereo float WAV."""
    path = tmp_path_factory.mktemp("api") / "mix.wav"
    sf.write(path, demo_track(44100, 6.0), 44100, subtype="FLOAT")
    return path


def test_every_public_name_is_documented():
    assert auracore.__all__ and "Chain" in dir(auracore)
    for name in auracore.__all__:
        obj = getattr(auracore, name)
        assert name == "__version__" or (obj.__doc__ and obj.__doc__.strip()), name
    with pytest.raises(AttributeError):
        auracore.no_such_name


def test_params_validate_chain_and_round_trip_toml(tmp_path):
    p = auracore.Params.preset("streaming").set("eq.3.gain_db", 2.5).set("comp.rms", True)
    assert p["eq.3.gain_db"] == 2.5 and p["comp.rms"] == 1.0 and p["loudness.target_lufs"] == -14.0
    assert p.to_dict()["bypass"] == 0.0 and len(p.to_dict()) == P.N_PARAMS
    path = tmp_path / "p.toml"
    path.write_text(p.to_toml(description="a test"))
    q = auracore.Params.from_toml(str(path))
    assert q == p and np.array_equal(np.asarray(q), p.vector)
    assert auracore.Params.from_toml(str(path)) != auracore.Params()
    with pytest.raises(auracore.ParamError) as exc:
        p.set("eq.3.gain_db", 40)
    assert "eq.3.gain_db" in str(exc.value) and "40" in str(exc.value) and "-18" in str(exc.value)
    with pytest.raises(auracore.ParamError, match="not a boolean"):
        p.set("bypass", 0.5)
    with pytest.raises(auracore.AuraCoreError, match="unknown parameter id"):
        p["eq.9.gain_db"]
    # a render reads the same preset file: the CLI and the API agree
    assert auracore.Params.preset(str(path)) == p


def test_chain_equals_render_sample_for_sample(mix, tmp_path):
    x, rate = auracore.load(str(mix))
    params = auracore.Params.preset("club")
    y = auracore.Chain(params, rate, 2)(x)
    out = tmp_path / "out.wav"
    r = subprocess.run([sys.executable, "-m", "auracore.control.cli", "render", str(mix), str(out),
                        "--preset", "club", "--subtype", "FLOAT"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ref, _ = sf.read(out, dtype="float64")
    assert y.shape == x.shape == ref.shape
    assert np.max(np.abs(y.astype(np.float32) - ref)) == 0.0  # FLOAT: the same samples, rounded once
    result = auracore.render(str(mix), str(tmp_path / "api.wav"), params, subtype="FLOAT")
    assert result.duration_s == pytest.approx(6.0)
    assert np.array_equal(sf.read(tmp_path / "api.wav", dtype="float64")[0], ref)


def test_chain_streams_and_a_mid_stream_change_glides_as_the_daemon_does():
    """Chain.process with params changed at a block boundary gives the samples the live
    engine gives with the same change posted to its control mailbox (within float32 rounding)."""
    rate = 48000
    x = demo_track(rate, 2.0).astype(np.float32)
    start = auracore.Params.preset("neutral").set("limiter.ceiling_dbtp", -1.0)
    later = start.copy().set("eq.2.gain_db", 6.0).set("output.gain_db", -3.0)
    chain = auracore.Chain(start, rate, 2)
    engine = Engine(rate, 2, start.vector)
    blocks = [x[i:i + 700] for i in range(0, x.shape[0], 700)]
    ours, live = [], []
    for k, block in enumerate(blocks):
        if k == 40:
            chain.params = later
            engine.control.post([(P.INDEX[i], v) for i, v in later.changed().items()
                                 if v != start[i]])
        ours.append(chain.process(block))
        out = np.empty_like(block)
        engine.run_block(block, out)
        live.append(out)
    ours, live = np.concatenate(ours), np.concatenate(live)
    assert ours.dtype == np.float32 and chain.latency == 72
    assert np.max(np.abs(ours - live)) <= 2e-7
    # the change glided: no step at the boundary (20 ms one-pole), and it arrived in full
    assert chain.params == later


def test_meter_and_analyze_agree_with_the_cli(mix):
    x, rate = auracore.load(str(mix))
    meter = auracore.Meter(rate, 2)
    for i in range(0, x.shape[0], 4410):
        meter.process(x[i:i + 4410])
    a = auracore.analyze(x, rate, path=str(mix))
    assert meter.integrated_lufs == pytest.approx(a.integrated_lufs, abs=1e-9)
    assert meter.true_peak_dbtp == pytest.approx(a.true_peak_dbtp, abs=1e-9)
    assert np.isfinite(meter.momentary_lufs) and np.isfinite(meter.short_term_lufs)
    r = subprocess.run([sys.executable, "-m", "auracore.control.cli", "analyze", str(mix), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(json.dumps(a.to_dict()))


def test_errors_share_one_root(tmp_path):
    with pytest.raises(auracore.AudioFileError):
        auracore.load(str(tmp_path / "missing.wav"))
    with pytest.raises(auracore.AudioArrayError):
        auracore.Chain(None, 48000, 2).process(np.zeros((10, 3)))
    with pytest.raises(auracore.AudioArrayError):
        auracore.analyze(np.zeros((10, 2), dtype=np.int16), 48000)
    with pytest.raises(auracore.AudioArrayError):
        auracore.Meter(7000, 2)
    x = np.zeros((100, 2))
    auracore.save(str(tmp_path / "a.wav"), x, 48000)
    with pytest.raises(auracore.AudioFileError, match="refusing to overwrite the input"):
        auracore.save(str(tmp_path / "a.wav"), x, 48000, inputs=(str(tmp_path / "a.wav"),))
    for cls in (auracore.AudioFileError, auracore.ParamError, auracore.PresetError, auracore.ModelError,
                auracore.ConfigError, auracore.AudioArrayError, auracore.AudioDeviceError):
        assert issubclass(cls, auracore.AuraCoreError)


def test_readme_python_examples_run(tmp_path):
    text = open(README).read()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        sf.write("mix.wav", demo_track(48000, 4.0), 48000, subtype="PCM_24")
        scope = {}
        for code in blocks:
            exec(compile(code, "README.md", "exec"), scope)
    finally:
        os.chdir(cwd)
    assert os.path.getsize(tmp_path / "master.wav") > 0


def test_offline_steps_from_the_top_level(mix):
    """The steps through `auracore.*` on arrays: stems that add back (-60 dB), a plucked tone's
    pitch (MIDI note, exact), a click track's tempo (1 %), a reference match's loudness (0.5 LU),
    and QC of a signal against itself (>= 95 of 100)."""
    x, rate = auracore.load(str(mix))
    stems = auracore.separate(x, rate, model="dsp")
    assert set(stems) == {"drums", "bass", "vocals", "other"}
    err = sum(stems.values()) - x
    assert 10 * np.log10((err ** 2).sum() / (x ** 2).sum()) <= -60.0
    t = np.arange(2 * 22050) / 22050
    tone = (0.3 * np.exp(-1.5 * t) * sum(0.6 ** k * np.sin(2 * np.pi * 440.0 * (k + 1) * t) for k in range(4)))[:, None]
    notes = auracore.transcribe(tone, 22050)
    assert isinstance(notes, auracore.Notes)
    assert {n.pitch for tr in notes.tracks for n in tr.notes} == {69}
    clicks = np.zeros((20 * 44100, 1))
    for s in np.arange(0, 20.0, 0.5):  # 120 BPM, an accent every 4 beats
        i = int(s * 44100)
        clicks[i:i + 400, 0] += np.hanning(800)[400:] * (0.9 if round(s / 0.5) % 4 == 0 else 0.4)
    prof = auracore.profile(clicks, 44100)
    assert isinstance(prof, auracore.Profile) and abs(prof.tempo.tempo_bpm - 120.0) <= 1.2
    quiet = x * 0.25
    m = auracore.master(quiet, x, rate, match=("loudness",))
    assert isinstance(m, auracore.Mastered) and m.audio.shape == x.shape
    assert abs(auracore.analyze(m.audio, rate).integrated_lufs - auracore.analyze(x, rate).integrated_lufs) <= 0.5
    report = auracore.qc(x, x, rate)
    assert isinstance(report, auracore.QCReport) and report.score >= 95.0


def test_importing_the_api_leaves_numba_blas_alone():
    """The program answers Numba's BLAS check "no BLAS" to start faster (control/entry.py);
    the library does not: a user's own jitted np.dot works beside the kernels (within 1e-12
    of numpy's)."""
    import subprocess
    import sys

    code = ("import numpy as np, numba, auracore;from auracore.kernels.chain import ChainState;"
            "ChainState(48000, 2);a=np.arange(6.0).reshape(2,3);b=np.ones((3,2));"
            "f=numba.njit(lambda x, y: np.dot(x, y));print(float(np.abs(f(a,b)-a@b).max()))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and float(r.stdout.split()[-1]) <= 1e-12, r.stdout + r.stderr

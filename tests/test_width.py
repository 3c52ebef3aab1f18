"""Width from the stereo input: the width model's features, the shipped model on held-out pieces
(through Steering, as render --ai and the live engine run it), the analysis ring's side
channel, render --ai on a narrowed file, and a corrupt width file."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from auracore.errors import ModelError
from auracore.models import dataset, dsp, sources
from auracore.models import width as W
from auracore.models.runtime import ModelRunner, Steering, default_model_dir
from auracore.realtime.ring import AnalysisRing, ring_write

FS = 48000


def _panned_noise(seconds=3.0, left=1.0, right=0.25, seed=0):
    n = np.random.default_rng(seed).standard_normal(int(seconds * FS)) * 0.1
    return np.stack([left * n, right * n], axis=1)


def test_features_place_a_panned_source_by_its_panning_index():
    # L = n, R = n / 4: |S| / |M| = 0.375 / 0.625 = 0.6 in every bin; narrowed by 0.5: 0.3
    for scale, bin_index in ((1.0, 5), (0.5, 3), (1.9, 7)):
        x = dsp.set_width(_panned_noise(), scale)
        f = W.clip_features(x, "band", FS)
        want = np.log(0.6 * scale)
        assert f[0] == pytest.approx(want, abs=1e-6)             # global ln side/mid amplitude
        for b in range(W.N_BANDS):
            base = 1 + b * (W.N_HIST + 1)
            hist = f[base:base + W.N_HIST]
            assert hist[bin_index] == pytest.approx(1.0, abs=1e-6), (scale, b, hist)
            assert f[base + W.N_HIST] == pytest.approx(want, abs=1e-5)
        assert list(f[-3:]) == [0.0, 0.0, 1.0]                    # the belief: band
    assert W.clip_features(_panned_noise()[:, :1], "band", FS) is None


def test_features_ignore_silence_and_decay():
    f = W.WidthFeatures(FS)
    f.push(np.zeros(1024), np.zeros(1024))
    assert not f.heard
    x = _panned_noise(1.0)
    f.push(x[:1024].mean(axis=1), 0.5 * (x[:1024, 0] - x[:1024, 1]))
    before = f.mid.sum()
    for _ in range(int(W.DECAY_S * FS / 1024)):  # one time constant of silence
        f.push(np.zeros(1024), np.zeros(1024))
    assert f.mid.sum() / before == pytest.approx(np.exp(-1.0), rel=0.02)


def test_the_ring_carries_the_side_of_a_stereo_input():
    ring = AnalysisRing(4096)
    x = np.random.default_rng(1).standard_normal((3000, 2)).astype(np.float32)
    for i in range(0, 3000, 300):
        ring_write(ring.data, ring.idx, x[i:i + 300])
    mid, side = np.zeros(2048, np.float32), np.zeros(2048, np.float32)
    assert ring.read(mid, side)
    np.testing.assert_allclose(mid, x[:2048].mean(axis=1), atol=1e-7)
    np.testing.assert_allclose(side, 0.5 * (x[:2048, 0] - x[:2048, 1]), atol=1e-7)
    mono = AnalysisRing(1024)
    ring_write(mono.data, mono.idx, x[:512, :1])
    m, s = np.zeros(512, np.float32), np.ones(512, np.float32)
    with pytest.raises(ValueError, match="side must be shaped like out"):
        mono.read(m, s[:100])
    assert mono.read(m, s) and np.array_equal(m, x[:512, 0]) and not s.any()


@pytest.fixture(scope="module")
def runner():
    return ModelRunner()


@pytest.fixture(scope="module")
def held_out_band():
    """The first four band pieces of the data set's test split (the width model never saw them)."""
    pytest.importorskip("music21")
    try:
        sources.require_tools()
    except sources.SourceError as exc:
        pytest.skip(str(exc))
    plan = [p for p in dataset.plan_pieces(1.0, 1) if p["split"] == "test" and p["kind"] == "band"][:4]
    return [sources.make_clean(p["kind"], p["ref"], p["seed"])[0] for p in plan]


def _decided_width(runner, x, stereo=True):
    steering = Steering(runner)
    mid = x.mean(axis=1).astype(np.float32)
    side = (0.5 * (x[:, 0] - x[:, 1])).astype(np.float32)
    for i in range(0, len(mid) - 1023, 1024):
        steering.push(mid[i:i + 1024], side[i:i + 1024] if stereo else None)
    return steering.decision[runner.target_ids.index("width.amount")], steering


def test_width_from_stereo_input_on_held_out_pieces(runner, held_out_band):
    """Narrowed by 0.6 the model asks for more width (truth 1/0.6 = 1.67), widened by 1.8
    for less (truth 0.56), and clean pieces are left within 0.8..1.25 (do no harm)."""
    clean, narrowed, widened = ([_decided_width(runner, dsp.set_width(x, s))[0] for x in held_out_band]
                                for s in (1.0, 0.6, 1.8))
    assert all(0.8 <= w <= 1.25 for w in clean), clean
    assert min(narrowed) >= 1.0 and np.mean(narrowed) >= 1.25, narrowed
    assert max(widened) <= 1.0 and np.mean(widened) <= 0.85, widened


def test_mono_material_in_two_channels_is_left_alone(runner):
    """L == R with a side 40 dB under the mid (noise, a mono recording in a stereo file):
    quieter than any training copy's side, so width.amount stays 1 (the trees would have
    asked to widen it by 2.2 dB)."""
    n = np.random.default_rng(4).standard_normal((6 * FS, 1)) * 0.1
    x = np.hstack([n, n]) + np.random.default_rng(5).standard_normal((6 * FS, 2)) * 0.1 * 10 ** (-40 / 20) / 2
    assert _decided_width(runner, x)[0] == 1.0
    assert _decided_width(runner, np.hstack([n, n]))[0] == 1.0


def test_mono_blocks_keep_the_deciders_prior(runner, held_out_band):
    x = dsp.set_width(held_out_band[0], 0.6)[:280 * 1024]   # the last block falls due for a decision
    w_mono, steering = _decided_width(runner, x, stereo=False)
    assert steering.stereo_blocks == 0
    probs, targets = runner.decide(steering.context, steering.target_lufs)
    assert w_mono == pytest.approx(float(targets[runner.target_ids.index("width.amount")]), abs=1e-6)
    assert _decided_width(runner, x)[0] > w_mono + 0.2


def test_render_ai_widens_a_narrowed_file(tmp_path, held_out_band):
    x = dsp.set_width(np.tile(held_out_band[1], (3, 1)), 0.6)   # 18 s, the side at 0.6
    src, out = tmp_path / "narrow.wav", tmp_path / "out.wav"
    sf.write(src, x, FS, subtype="FLOAT")
    r = subprocess.run([sys.executable, "-m", "auracore.control.cli", "render", str(src), str(out), "--preset", "neutral",
                        "--ai", "--set", "ai.amount=1", "--subtype", "FLOAT"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    def side_mid_db(y):
        y = y[len(y) // 2:]  # after the glide
        return 10 * np.log10(np.sum((y[:, 0] - y[:, 1]) ** 2) / np.sum((y[:, 0] + y[:, 1]) ** 2))

    y = sf.read(out)[0]
    raised = side_mid_db(y) - side_mid_db(x)
    assert 2.0 <= raised <= 6.0, f"side/mid raised by {raised:.2f} dB (the flaw took away {-20 * np.log10(0.6):.2f})"


def test_a_corrupt_width_file_is_a_model_error(tmp_path):
    d = tmp_path / "weights"
    shutil.copytree(default_model_dir(), d)
    (d / W.FILE).write_bytes(b"not a model")
    with pytest.raises(ModelError, match="^model file corrupt: .*width.onnx does not match its checksum"):
        ModelRunner(str(d))
    (d / W.FILE).unlink()
    with pytest.raises(ModelError, match="^model file missing: .*width.onnx"):
        ModelRunner(str(d))
    (d / W.CARD).write_text("[]")
    shutil.copy(default_model_dir() + "/" + W.FILE, d / W.FILE)
    with pytest.raises(ModelError, match="^model file corrupt: .*width.json is unreadable"):
        ModelRunner(str(d))
    (d / W.FILE).unlink()
    (d / W.CARD).unlink()
    assert ModelRunner(str(d)).width is None   # without the width files: the decider's prior


def test_the_live_inference_thread_hears_the_side(runner, held_out_band):
    """Engine and inference thread as serve runs them (blocks fed from Python): a narrowed
    stereo input steers width.amount up through the analysis ring's side channel."""
    import time

    from auracore.realtime.engine import Engine
    from auracore.realtime.inference import InferenceThread

    engine = Engine(FS, 2)
    thread = InferenceThread(engine, Steering(runner))
    thread.start()
    try:
        x = dsp.set_width(held_out_band[0], 0.6).astype(np.float32)
        out = np.zeros((1024, 2), dtype=np.float32)
        deadline = time.monotonic() + 120.0  # one bound for the whole stream: a stuck thread fails, not hangs
        for i in range(0, len(x) - 1023, 1024):
            engine.run_block(np.ascontiguousarray(x[i:i + 1024]), out)
            while engine.ring.available >= 1024:
                assert time.monotonic() < deadline, "the inference thread stopped reading the ring"
                time.sleep(0.001)
        width = thread.stats()["targets"]["width.amount"]
    finally:
        thread.stop()
    assert engine.ring.dropped == 0
    assert width > 1.2, width   # the decision is 1.42 (truth 1.67), glided from 1.0 with a 2 s time constant


def test_the_cards_figures_and_the_deadband_are_exact():
    """shrink moves requests toward 0 by the deadband; figures gives the width error, the share
    of each flaw undone (log terms) and what clean copies are asked, to 1e-12."""
    np.testing.assert_allclose(W.shrink([0.3, -0.05, -0.4, 0.0], 0.1), [0.2, 0.0, -0.3, 0.0], atol=1e-12)
    y = np.log([1.0, 0.5, 2.0, 1.0])          # scales: clean, narrowed by 0.5, widened by 2, clean
    pred = np.log([1.0, 0.5 ** 0.5, 1.0, 2.0 ** 0.25])   # half of the first flaw (in logs), none of the second
    f = W.figures(pred, y, ["band"] * 4)
    truth, got = np.array([1.0, 2.0, 0.5, 1.0]), np.array([1.0, 2 ** 0.5, 1.0, 2 ** -0.25])
    assert f["mae"] == pytest.approx(np.mean(np.abs(got - truth)), abs=1e-12)
    assert f["mae_neutral"] == pytest.approx(np.mean(np.abs(1.0 - truth)), abs=1e-12)
    assert f["recovery"] == pytest.approx(1.0 - (0.5 * np.log(2) + np.log(2)) / (2 * np.log(2)), abs=1e-12)
    assert f["clean_p90_octaves"] == pytest.approx(0.9 * 0.25, abs=1e-12)

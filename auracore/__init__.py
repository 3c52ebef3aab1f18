"""AuraCore: a real-time AI mastering engine, and its Python API.

    import auracore
    x, rate = auracore.load("mix.wav")
    params = auracore.Params.preset("streaming").set("eq.3.gain_db", 1.5)
    y = auracore.Chain(params, rate, x.shape[1])(x)       # mastered, aligned with x
    print(auracore.analyze(y, rate).integrated_lufs)
    auracore.save("master.wav", y, rate, subtype="PCM_24")

The offline steps on whole arrays: ``separate`` (stems that add back to the mix),
``transcribe`` (-> ``Notes``, ``.to_midi()``), ``profile`` (-> ``Profile``: tempo, key,
chords, sections, elements), ``master`` (by reference -> ``Mastered``), ``qc`` (the
12-dimension A/B score -> ``QCReport``), ``fingerprint`` (64 named floats ->
``Fingerprint``) and ``reconstruct`` (the track rebuilt through FluidSynth and iterated on
QC -> ``Reconstruction``).

Arrays are (frames, channels) float32 or float64 in [-1, 1] ((frames,) is mono); rates in
Hz; every error AuraCore raises on purpose is an ``AuraCoreError``. Names load on first
use, so ``import auracore`` is quick and the command line starts fast.
"""

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "Params": "auracore.offline.params",
    "preset_names": "auracore.offline.params",
    "Chain": "auracore.offline.chain",
    "Meter": "auracore.offline.chain",
    "Analysis": "auracore.offline.analyze",
    "analyze": "auracore.offline.analyze",
    "load": "auracore.offline.audio_io",
    "save": "auracore.offline.audio_io",
    "render": "auracore.offline.render",
    "RenderResult": "auracore.offline.render",
    "separate": "auracore.offline.separate",
    "transcribe": "auracore.offline.transcribe",
    "Notes": "auracore.offline.transcribe",
    "profile": "auracore.offline.profile",
    "Profile": "auracore.offline.profile",
    "master": "auracore.offline.master",
    "Mastered": "auracore.offline.master",
    "qc": "auracore.offline.qc",
    "QCReport": "auracore.offline.qc",
    "reconstruct": "auracore.offline.reconstruct",
    "Reconstruction": "auracore.offline.reconstruct",
    "fingerprint": "auracore.offline.fingerprint",
    "Fingerprint": "auracore.offline.fingerprint",
    "AuraCoreError": "auracore.errors",
    "AudioFileError": "auracore.errors",
    "AudioArrayError": "auracore.errors",
    "ParamError": "auracore.errors",
    "PresetError": "auracore.errors",
    "ModelError": "auracore.errors",
    "ConfigError": "auracore.errors",
    "AudioDeviceError": "auracore.errors",
}
_RENAMED = {"render": "render_file"}

__all__ = sorted(_EXPORTS) + ["__version__"]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from auracore.errors import (AudioArrayError, AudioDeviceError, AudioFileError, AuraCoreError, ConfigError,
                                 ModelError, ParamError, PresetError)
    from auracore.offline.analyze import Analysis, analyze
    from auracore.offline.audio_io import load, save
    from auracore.offline.chain import Chain, Meter
    from auracore.offline.master import Mastered, master
    from auracore.offline.params import Params, preset_names
    from auracore.offline.profile import Profile, profile
    from auracore.offline.qc import QCReport, qc
    from auracore.offline.fingerprint import Fingerprint, fingerprint
    from auracore.offline.reconstruct import Reconstruction, reconstruct
    from auracore.offline.render import RenderResult
    from auracore.offline.render import render_file as render
    from auracore.offline.separate import separate
    from auracore.offline.transcribe import Notes, transcribe


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'auracore' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__():
    return __all__

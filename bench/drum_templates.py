"""Measure the drum transcriber's kit templates: the new-energy band shape of single hits of
each of FluidR3_GM's kits (bank 128), at velocity 100, as ``offline/transcribe/drums.py``'s
``KIT_TEMPLATES_DB`` holds them (printed as Python): every piece of the standard kit, the
pieces each kit brings (``KIT_PIECES``) of the others.

    .venv/bin/python bench/drum_templates.py
"""

import sys

import numpy as np
from scipy.signal import resample_poly

KITS = (0, 8, 16, 24, 25, 32, 40)  # standard, room, power, electronic, TR-808, jazz, brush
VELOCITY = 100


def measure(kit: int) -> dict:
    from auracore.models import fluid
    from auracore.offline.transcribe import drums as DR

    out = {}
    for name, note in DR.TEMPLATE_NOTES.items():
        x = fluid.render_tracks(fluid.SOUNDFONT, [fluid.Track(kit, 64, ((0.5, 0.1, note, VELOCITY),))], 1.5,
                                drums=True, sample_rate=44100, sample_format="float")
        y = resample_poly(x.mean(axis=1), DR.RATE, 44100).astype(np.float32)
        out[name] = tuple(round(float(v), 1) for v in DR.measure_template(y, 0.5))
    return out


def main() -> int:
    from auracore.offline.transcribe.drums import KIT_PIECES

    print("KIT_TEMPLATES_DB = {")
    for kit in KITS:
        shapes = measure(kit)
        print(f"    {kit}: {{")
        for name, shape in shapes.items():
            if kit == 0 or name in KIT_PIECES:
                print(f'        "{name}": {shape},')
        print("    },")
    print("}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

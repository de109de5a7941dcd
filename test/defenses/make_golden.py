"""Golden values for the defense tests, from PIL (the library the paper's code used).

Images are 8-bit, CHW order, base64. JPEG: PIL's Image.save(f, "jpeg", quality=q) then decode, as the authors'
image_utils.jpeg; smoothing: PIL's ImageFilter.SMOOTH_MORE, as their smoothen.
Run with a Python that has Pillow and NumPy (Debian: python3-pil, python3-numpy):

    python3 test/defenses/make_golden.py > test/defenses/golden.json
    npx prettier --write test/defenses/golden.json
"""
import base64
import json
import sys
from io import BytesIO

import numpy as np
import PIL
from PIL import Image, ImageFilter, features

rng = np.random.default_rng(2018)


def image(h, w, c):
    """A smooth gradient with texture and noise: JPEG changes it, but not into mush."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 80 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    chans = [base + 30 * k + rng.normal(0, 20, (h, w)) for k in range(c)]
    a = np.clip(np.stack(chans, -1), 0, 255).round().astype(np.uint8)
    return a[..., 0] if c == 1 else a


def jpeg(a, q):
    f = BytesIO()
    Image.fromarray(a, mode="L" if a.ndim == 2 else "RGB").save(f, "jpeg", quality=q)
    return np.asarray(Image.open(f))


def chw(a):
    """The image's bytes in CHW order, base64-encoded."""
    planes = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
    return base64.b64encode(np.ascontiguousarray(planes).tobytes()).decode("ascii")


cases = []
for name, (h, w, c) in {"rgb_12x17": (12, 17, 3), "gray_9x11": (9, 11, 1)}.items():
    a = image(h, w, c)
    cases.append({
        "name": name,
        "shape": [c, h, w],
        "input": chw(a),
        "jpeg": {str(q): chw(jpeg(a, q)) for q in (10, 23, 75, 95)},
    })

s = image(9, 10, 3)
smooth = {"shape": [3, 9, 10], "input": chw(s), "output": chw(np.asarray(Image.fromarray(s).filter(ImageFilter.SMOOTH_MORE)))}

json.dump({
    "source": f"Pillow {PIL.__version__}, libjpeg {features.version('jpg')}",
    "jpeg": cases,
    "smoothMore": smooth,
}, sys.stdout, indent=2)
sys.stdout.write("\n")

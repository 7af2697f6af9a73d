"""Moving faces made from real photographs that ship inside installed packages.

A participant's face is a portrait crop of one photo (scikit-image's ``astronaut`` or
matplotlib's ``grace_hopper.jpg``), recoloured, rescaled, maybe mirrored, on their own
background. Every frame moves it a little (sway, translation, breathing) and opens the mouth
with the loudness of the speech, so motion and talking never mark A/H by themselves.

The A/H cue is a head shake: a horizontal squeeze (yaw-like, anisotropic, so it survives the
similarity alignment of the face stage and shows in position/scale-normalised landmarks)
with a roll oscillation, plus eyes looking away/closing (darkened eye regions). It is drawn on
exactly the frames of the planted intervals.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np

from bah.core.registry import Registry
from bah.synth.plan import Look, VideoPlan

PORTRAITS = Registry("synthetic face photo")


@dataclass(frozen=True)
class Portrait:
    """A photo and where its face parts are (x, y pixels; from dlib's 68-point predictor)."""

    image: np.ndarray
    face_box: Tuple[int, int, int, int]  # left, top, right, bottom (dlib HOG detection)
    eyes: Tuple[Tuple[float, float], Tuple[float, float]]
    mouth: Tuple[float, float]
    mouth_size: Tuple[float, float]  # width, height
    crop_limit: int  # rows below this hold other face-like things (the astronaut's patch)


@PORTRAITS.register("astronaut")
def _astronaut() -> Portrait:
    from skimage import data

    return Portrait(
        image=data.astronaut(),
        face_box=(175, 76, 265, 166),
        eyes=((203.2, 101.5), (246.5, 104.2)),
        mouth=(223.3, 145.5),
        mouth_size=(45.0, 17.0),
        crop_limit=320,
    )


@PORTRAITS.register("grace_hopper")
def _grace_hopper() -> Portrait:
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as fh:
        image = np.asarray(Image.open(fh).convert("RGB"))
    return Portrait(
        image=image,
        face_box=(180, 139, 366, 325),
        eyes=((223.7, 192.3), (305.3, 189.2)),
        mouth=(267.5, 279.2),
        mouth_size=(67.0, 18.0),
        crop_limit=10_000,
    )


@functools.lru_cache(maxsize=None)
def load_portrait(name: str) -> Portrait:
    return PORTRAITS.get(name)()


@dataclass
class _Sprite:
    rgb: np.ndarray  # float32 (h, w, 3) in [0, 255], already recoloured and scaled
    alpha: np.ndarray  # float32 (h, w) in [0, 1]
    rgba: np.ndarray  # uint8 (h, w, 4): what is warped into the frame (one warp for colour and mask)
    centre: Tuple[float, float]  # face centre in sprite pixels
    eyes: Tuple[Tuple[float, float], Tuple[float, float]]
    mouth: Tuple[float, float]
    mouth_size: Tuple[float, float]
    face_width: float


def background(look: Look, width: int, height: int) -> np.ndarray:
    """A plausible room: a two-colour gradient wall, soft blotches and a door/shelf frame."""
    rng = np.random.default_rng(look.background)
    c1, c2 = rng.uniform(40, 220, size=3), rng.uniform(40, 220, size=3)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    g = (np.cos(angle) * xx / width + np.sin(angle) * yy / height)
    g = (g - g.min()) / max(1e-6, float(g.max() - g.min()))
    img = c1[None, None, :] * (1 - g[..., None]) + c2[None, None, :] * g[..., None]
    noise = rng.normal(0, 1, size=(max(2, height // 48), max(2, width // 48), 3)).astype(np.float32)
    noise = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    img += 10.0 * noise
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 8, width // 3)), int(rng.integers(height // 4, height))
        colour = tuple(float(v) for v in rng.uniform(30, 230, size=3))
        cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), colour, thickness=int(rng.integers(3, 12)))
    return np.clip(img, 0, 255).astype(np.float32)


def _sprite(look: Look, height: int) -> _Sprite:
    p = load_portrait(look.portrait)
    l, t, r, b = p.face_box
    fw = float(r - l)
    cx, cy = (l + r) / 2.0, (t + b) / 2.0
    H, W = p.image.shape[:2]
    x0, x1 = int(max(0, cx - 1.35 * fw)), int(min(W, cx + 1.35 * fw))
    y0, y1 = int(max(0, cy - 1.5 * fw)), int(min(H, p.crop_limit, cy + 1.65 * fw))
    img = p.image[y0:y1, x0:x1].astype(np.float32)
    pts = {"c": (cx - x0, cy - y0), "e0": (p.eyes[0][0] - x0, p.eyes[0][1] - y0),
           "e1": (p.eyes[1][0] - x0, p.eyes[1][1] - y0), "m": (p.mouth[0] - x0, p.mouth[1] - y0)}
    if look.mirror:
        img = img[:, ::-1]
        w = img.shape[1]
        pts = {k: (w - 1 - x, y) for k, (x, y) in pts.items()}
        pts["e0"], pts["e1"] = pts["e1"], pts["e0"]
    # Colour: per-channel gain and a gamma (skin tone and camera differ per participant).
    img = 255.0 * np.power(np.clip(img / 255.0, 0, 1), look.gamma) * np.asarray(look.gains, np.float32)
    s = look.face_frac * height / fw
    img = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    pts = {k: (x * s, y * s) for k, (x, y) in pts.items()}
    h, w = img.shape[:2]
    # Soft head-and-shoulders mask, so the photo's own background fades into the room.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    fws = fw * s
    ex, ey = pts["c"][0], pts["c"][1] + 0.2 * fws
    head = ((xx - ex) / (1.05 * fws)) ** 2 + ((yy - ey) / (1.45 * fws)) ** 2
    alpha = np.clip((1.0 - head) / 0.25, 0, 1)
    edge = np.minimum.reduce([xx, w - 1 - xx, yy, h - 1 - yy]) / max(2.0, 0.06 * fws)
    alpha = np.minimum(alpha, np.clip(edge, 0, 1))
    rgb = np.clip(img, 0, 255).astype(np.float32)
    rgba = np.dstack([rgb + 0.5, alpha * 255.0 + 0.5]).astype(np.uint8)
    return _Sprite(
        rgb=rgb,
        alpha=alpha.astype(np.float32),
        rgba=rgba,
        centre=pts["c"],
        eyes=(pts["e0"], pts["e1"]),
        mouth=pts["m"],
        mouth_size=(p.mouth_size[0] * s, p.mouth_size[1] * s),
        face_width=fws,
    )


class FaceAnimator:
    """Renders frame i of one video: ``frame(i, mouth_open, cue_t)`` -> RGB uint8 (H, W, 3).

    ``cue_t`` is None outside A/H and the seconds since the interval began inside it.
    """

    # The head shake: squeeze 10-22 % of the face width, roll +-9 degrees, ~1.6 shakes/s.
    SHAKE_HZ = 1.6
    SQUEEZE_MIN, SQUEEZE_EXTRA = 0.10, 0.12
    SHAKE_ROLL = 9.0
    EYE_DARKEN = 0.6

    def __init__(self, plan: VideoPlan, width: int, height: int):
        self.plan = plan
        self.width, self.height = width, height
        self.bg_u8 = np.clip(background(plan.look, width, height) + 0.5, 0, 255).astype(np.uint8)
        self.sprite = _sprite(plan.look, height)
        rng = np.random.default_rng([plan.seed, 2])
        self.phases = rng.uniform(0, 2 * math.pi, size=6)
        self.freqs = rng.uniform([0.15, 0.1, 0.2, 0.25, 0.3, 0.5], [0.35, 0.3, 0.4, 0.45, 0.5, 0.9])
        self._mouth_grid = self._mouth_roi()
        self._eye_masks = self._eye_roi()

    # -- face parts ---------------------------------------------------------------------
    def _mouth_roi(self):
        sp = self.sprite
        mx, my = sp.mouth
        mw, mh = sp.mouth_size
        x0, x1 = int(max(0, mx - 0.9 * mw)), int(min(sp.rgb.shape[1], mx + 0.9 * mw))
        y0, y1 = int(max(0, my - 0.6 * mh)), int(min(sp.rgb.shape[0], my + 0.9 * mw + 2.5 * mh))
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        gx = np.exp(-0.5 * ((xx - mx) / (0.38 * mw)) ** 2)
        # Below the lip line everything moves down (jaw drop), fading out towards the chin.
        gy = np.clip((yy - (my - 0.1 * mh)) / (0.3 * mh), 0, 1) * np.exp(
            -0.5 * (np.maximum(0, yy - (my + 1.0 * mh)) / (0.9 * mh)) ** 2
        )
        return (x0, y0, x1, y1, xx, yy, gx * gy, gx)

    def _eye_roi(self):
        sp = self.sprite
        out = []
        r = 0.22 * sp.face_width
        for ex, ey in sp.eyes:
            x0, x1 = int(max(0, ex - r)), int(min(sp.rgb.shape[1], ex + r))
            y0, y1 = int(max(0, ey - 0.7 * r)), int(min(sp.rgb.shape[0], ey + 0.7 * r))
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            m = np.clip(1.0 - (((xx - ex) / (0.75 * r)) ** 2 + ((yy - ey) / (0.4 * r)) ** 2), 0, 1) ** 0.5
            out.append((x0, y0, x1, y1, m[..., None].astype(np.float32)))
        return out

    def _face(self, mouth_open: float, cue: bool) -> np.ndarray:
        """The sprite (uint8 RGBA) with the mouth opened and, during A/H, the eyes averted/closed."""
        if mouth_open <= 0.02 and not cue:
            return self.sprite.rgba
        rgba = self.sprite.rgba.copy()
        if mouth_open > 0.02:
            x0, y0, x1, y1, xx, yy, w, gx = self._mouth_grid
            drop = mouth_open * 0.7 * self.sprite.mouth_size[1]
            src = self.sprite.rgb[y0:y1, x0:x1]
            mapy = (yy - drop * w) - y0
            mapx = xx - x0
            moved = cv2.remap(src, mapx, mapy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            # The opened gap between the lips is dark.
            my = self.sprite.mouth[1]
            gap = gx * np.exp(-0.5 * ((yy - (my + 0.5 * drop)) / (0.35 * drop + 1.0)) ** 2) * min(1.0, mouth_open * 1.5)
            moved *= (1.0 - 0.45 * gap)[..., None]
            rgba[y0:y1, x0:x1, :3] = np.clip(moved + 0.5, 0, 255).astype(np.uint8)
        if cue:
            for x0, y0, x1, y1, m in self._eye_masks:
                roi = rgba[y0:y1, x0:x1, :3].astype(np.float32)
                rgba[y0:y1, x0:x1, :3] = (roi * (1.0 - self.EYE_DARKEN * m) + 0.5).astype(np.uint8)
        return rgba

    # -- motion -------------------------------------------------------------------------
    def pose(self, i: int, cue_t: float | None) -> Tuple[float, float, float, float, float]:
        """(dx, dy, roll degrees, scale, x-squeeze) of frame i; cue_t = seconds into the A/H interval."""
        t = i / self.plan.fps
        ph, f = self.phases, self.freqs
        dx = 0.02 * self.width * math.sin(2 * math.pi * f[0] * t + ph[0]) + 0.006 * self.width * math.sin(2 * math.pi * f[5] * t + ph[5])
        dy = 0.012 * self.height * math.sin(2 * math.pi * f[1] * t + ph[1])
        roll = self.plan.look.roll + 2.5 * math.sin(2 * math.pi * f[2] * t + ph[2])
        scale = 1.0 + 0.02 * math.sin(2 * math.pi * f[3] * t + ph[3])
        squeeze = 1.0
        if cue_t is not None:
            w = 2 * math.pi * self.SHAKE_HZ * cue_t
            squeeze = 1.0 - (self.SQUEEZE_MIN + self.SQUEEZE_EXTRA * abs(math.sin(w)))
            roll += self.SHAKE_ROLL * math.sin(w)
        return dx, dy, roll, scale, squeeze

    def frame(self, i: int, mouth_open: float, cue_t: float | None) -> np.ndarray:
        face = self._face(mouth_open, cue_t is not None)
        dx, dy, roll, scale, squeeze = self.pose(i, cue_t)
        sp = self.sprite
        cx, cy = sp.centre
        tx = self.plan.look.centre[0] * self.width + dx
        ty = self.plan.look.centre[1] * self.height + dy
        a = math.radians(roll)
        ca, sa = math.cos(a) * scale, math.sin(a) * scale
        # frame = T(tx,ty) R(roll) S(scale) diag(squeeze, 1) (p - c)
        m = np.array([[ca * squeeze, -sa, 0.0], [sa * squeeze, ca, 0.0]], dtype=np.float64)
        m[:, 2] = np.array([tx, ty]) - m[:, :2] @ np.array([cx, cy])
        h, w = face.shape[:2]
        corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], dtype=np.float64)
        proj = corners @ m[:, :2].T + m[:, 2]
        bx0, by0 = np.floor(proj.min(0)).astype(int)
        bx1, by1 = np.ceil(proj.max(0)).astype(int)
        bx0, by0 = max(0, bx0), max(0, by0)
        bx1, by1 = min(self.width, bx1), min(self.height, by1)
        out = self.bg_u8.copy()
        if bx1 > bx0 and by1 > by0:
            mr = m.copy()
            mr[:, 2] -= (bx0, by0)
            size = (int(bx1 - bx0), int(by1 - by0))
            warped = cv2.warpAffine(face, mr, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            al = warped[..., 3].astype(np.float32) * (1.0 / 255.0)
            roi = out[by0:by1, bx0:bx1]
            out[by0:by1, bx0:bx1] = cv2.blendLinear(cv2.cvtColor(warped, cv2.COLOR_RGBA2RGB), roi, al, 1.0 - al)
        return out

"""Five-point face alignment: the ArcFace template and two similarity estimators.

``fit_similarity`` is the default: a least-squares 4-DOF similarity (rotation, uniform scale,
translation; never a reflection) from the detected points onto the template.
``compat_similarity`` reproduces the original's face.evoLVe/MATLAB ``cp2tform`` routine bit for
bit: it fits the template *onto* the landmarks (with a reflective candidate) and inverts the
winner. On noisy points the two differ by up to ~2 px, which matters only for byte-compatibility.
"""
from __future__ import annotations

import numpy as np

# face.evoLVe 96x112 template shifted +8 px in x: the ArcFace 112x112 template.
# Order: left eye, right eye, nose tip, left mouth corner, right mouth corner (image coordinates).
ARCFACE_112 = np.array(
    [
        [38.29459953, 51.69630051],
        [73.53179932, 51.50139999],
        [56.02519989, 71.73660278],
        [41.54930115, 92.3655014],
        [70.72990036, 92.20410156],
    ],
    dtype=np.float64,
)

# dlib 68-point indices that give the five template points (the eye centres are means).
LEFT_EYE_68 = slice(36, 42)   # subject's right eye, image left
RIGHT_EYE_68 = slice(42, 48)
NOSE_TIP_68 = 30
MOUTH_LEFT_68 = 48
MOUTH_RIGHT_68 = 54


def arcface_template(size: int) -> np.ndarray:
    """The ArcFace template scaled to an output of ``size`` x ``size`` pixels, float64 (5,2)."""
    if size <= 0:
        raise ValueError(f"template size must be positive, got {size}")
    return ARCFACE_112 * (float(size) / 112.0)


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """Eye centres, nose tip and mouth corners from dlib's 68 points, float64 (5,2)."""
    lm = np.asarray(landmarks68, dtype=np.float64)
    if lm.shape != (68, 2):
        raise ValueError(f"expected (68, 2) landmarks, got {lm.shape}")
    return np.stack([
        lm[LEFT_EYE_68].mean(axis=0),
        lm[RIGHT_EYE_68].mean(axis=0),
        lm[NOSE_TIP_68],
        lm[MOUTH_LEFT_68],
        lm[MOUTH_RIGHT_68],
    ])


def _solve_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares (a, b, tx, ty) with dst ~ [[a, -b], [b, a]] @ src + t (no reflection possible)."""
    n = src.shape[0]
    x, y = src[:, 0], src[:, 1]
    A = np.zeros((2 * n, 4))
    A[:n, 0], A[:n, 1], A[:n, 2] = x, -y, 1.0
    A[n:, 0], A[n:, 1], A[n:, 3] = y, x, 1.0
    rhs = np.concatenate([dst[:, 0], dst[:, 1]])
    sol, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    return sol


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (no reflection) mapping ``src`` points onto ``dst`` in least squares.

    Usable directly as ``cv2.warpAffine(image, M, (S, S))``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or src.shape[0] < 2:
        raise ValueError(f"need matching (K>=2, 2) point sets, got {src.shape} and {dst.shape}")
    a, b, tx, ty = _solve_similarity(src, dst)
    return np.array([[a, -b, tx], [b, a, ty]])


# --- the original's estimator (matlab_cp2tform.py), kept literally for compatibility ----------

def _cp2tform_nonreflective(uv: np.ndarray, xy: np.ndarray):
    m = xy.shape[0]
    x = xy[:, 0].reshape((-1, 1))
    y = xy[:, 1].reshape((-1, 1))
    X = np.vstack((
        np.hstack((x, y, np.ones((m, 1)), np.zeros((m, 1)))),
        np.hstack((y, -x, np.zeros((m, 1)), np.ones((m, 1)))),
    ))
    U = np.vstack((uv[:, 0].reshape((-1, 1)), uv[:, 1].reshape((-1, 1))))
    if np.linalg.matrix_rank(X) < 4:
        raise ValueError("compat alignment: degenerate point set (need 2 distinct points)")
    r = np.squeeze(np.linalg.lstsq(X, U, rcond=None)[0])
    sc, ss, tx, ty = r
    t_inv = np.array([[sc, -ss, 0.0], [ss, sc, 0.0], [tx, ty, 1.0]])
    t = np.linalg.inv(t_inv)
    t[:, 2] = np.array([0.0, 0.0, 1.0])
    return t


def _tformfwd(trans: np.ndarray, uv: np.ndarray) -> np.ndarray:
    uvh = np.hstack((uv, np.ones((uv.shape[0], 1))))
    return (uvh @ trans)[:, :-1]


def compat_similarity(landmarks: np.ndarray, template: np.ndarray) -> np.ndarray:
    """The original ``get_similarity_transform_for_cv2(landmarks, template)`` 2x3 matrix.

    Both point sets go through float32 first, as in the original. Its reflective branch
    mirrors the template in place before comparing residuals (an upstream aliasing bug);
    that is reproduced on a private copy, so the caller's array is untouched.
    """
    uv = np.asarray(landmarks, dtype=np.float32)
    xy = np.array(template, dtype=np.float32)  # private copy: mutated below, as upstream does
    trans1 = _cp2tform_nonreflective(uv, xy)
    xy_r = xy
    xy_r[:, 0] = -1 * xy_r[:, 0]
    trans2r = _cp2tform_nonreflective(uv, xy_r)
    trans2 = trans2r @ np.array([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    norm1 = np.linalg.norm(_tformfwd(trans1, uv) - xy)
    norm2 = np.linalg.norm(_tformfwd(trans2, uv) - xy)
    trans = trans1 if norm1 <= norm2 else trans2
    return trans[:, 0:2].T.copy()


def transform_points(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (K,2) points."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ np.asarray(affine)[:, :2].T + np.asarray(affine)[:, 2]

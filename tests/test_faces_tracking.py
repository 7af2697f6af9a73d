"""Fill policies, the per-frame record, face choice and the detect-every-k tracker."""
import numpy as np
import pytest

from bah.stages.faces.detector import DETECTORS, Detection
from bah.stages.faces.tracking import (FILL_POLICIES, FaceRecord, FaceTracker, NoFaceError, Observation,
                                choose_face, iou)

S = 8


def _run_policy(name, found_mask):
    n = len(found_mask)
    faces = np.zeros((n, S, S, 3), np.uint8)
    rec = FaceRecord(n)
    pol = FILL_POLICIES.create(name, faces, rec, S)
    for i, hit in enumerate(found_mask):
        if hit:
            faces[i] = i + 1  # each real face has a distinct value
            obs = Observation(np.array([i, i, i + 10, i + 10.0]), np.full((68, 2), float(i)), 1.5, False)
            rec.set_found(i, obs, np.eye(2, 3) * (i + 1))
            pol.found(i)
        else:
            frame = np.full((20, 30, 3), 200, np.uint8)
            pol.missing(i, frame)
    pol.finish()
    return faces, rec


MASK = [0, 0, 1, 1, 0, 0, 1, 0]  # misses at the start, middle and end


def test_registries_list_their_entries():
    assert DETECTORS.list() == ["cnn", "hog"]
    assert FILL_POLICIES.list() == ["backfill", "compat"]


def test_backfill_policy_sources_and_record():
    faces, rec = _run_policy("backfill", MASK)
    np.testing.assert_array_equal(rec.source, [2, 2, 2, 3, 3, 3, 6, 6])
    np.testing.assert_array_equal(rec.detected, np.array(MASK, bool))
    np.testing.assert_array_equal(faces[:, 0, 0, 0], [3, 3, 3, 4, 4, 4, 7, 7])
    # filled frames carry the source face's box, landmarks, score and affine
    np.testing.assert_array_equal(rec.box[0], rec.box[2])
    np.testing.assert_array_equal(rec.affine[5], rec.affine[3])
    assert rec.landmarks68[7, 0, 0] == 6 and rec.score[1] == pytest.approx(1.5)
    assert set(rec.arrays()) == {"detected", "tracked", "source", "box", "landmarks68", "score", "affine"}


def test_compat_policy_full_first_frame_then_hold_last():
    faces, rec = _run_policy("compat", MASK)
    np.testing.assert_array_equal(rec.source, [-1, -1, 2, 3, 3, 3, 6, 6])
    assert (faces[0] == 200).all() and (faces[1] == 200).all()  # the whole frame, resized to S
    np.testing.assert_array_equal(faces[2:, 0, 0, 0], [3, 4, 4, 4, 7, 7])
    np.testing.assert_array_equal(rec.box[0], [0, 0, 30, 20])
    np.testing.assert_allclose(rec.affine[0], [[S / 30, 0, 0], [0, S / 20, 0]])


@pytest.mark.parametrize("name", ["backfill", "compat"])
def test_no_face_at_all_is_an_error(name):
    with pytest.raises(NoFaceError, match="no face found in any of 4 frames"):
        _run_policy(name, [0, 0, 0, 0])


def test_choose_face_continues_track_else_largest():
    small = Detection(np.array([0, 0, 50, 50.0]), 2.0)
    big = Detection(np.array([200, 200, 400, 400.0]), 0.5)
    assert choose_face([small, big], None) is big
    assert choose_face([small, big], np.array([5, 5, 55, 55.0])) is small
    assert choose_face([small, big], np.array([600, 600, 640, 640.0])) is big  # no overlap: largest


class _FakeDetector:
    def __init__(self, boxes):
        self.boxes = boxes  # frame -> list of true face boxes
        self.calls = []
        self.frame = 0

    def detect(self, gray):
        self.calls.append(self.frame)
        return [Detection(np.asarray(b, float), 1.0) for b in self.boxes.get(self.frame, [])]


class _FakePredictor:
    """Landmarks span the true face when the box overlaps it, else the box (a lost predictor)."""

    def __init__(self, det):
        self.det = det

    def __call__(self, gray, box):
        faces = self.det.boxes.get(self.det.frame, [])
        x0, y0, x1, y1 = next((f for f in faces if iou(np.asarray(f, float), np.asarray(box)) > 0), box)
        g = np.linspace(0, 1, 68)
        return np.stack([x0 + g * (x1 - x0), y0 + g * (y1 - y0)], 1)


def test_tracker_detects_every_k_frames_and_when_lost():
    # the face drifts 2 px a frame, then jumps 80 px on frame 7 (> max_shift x its 100 px width)
    boxes = {i: [[100 + 2 * i + 80 * (i >= 7), 100, 200 + 2 * i + 80 * (i >= 7), 200]] for i in range(12)}
    det = _FakeDetector(boxes)
    tr = FaceTracker(det, _FakePredictor(det), detect_every=5)
    gray = np.zeros((480, 640), np.uint8)
    obs = []
    for i in range(12):
        det.frame = i
        obs.append(tr.step(gray))
    assert det.calls == [0, 5, 7]
    assert [o.tracked for o in obs] == [False, True, True, True, True, False, True, False, True, True, True, True]
    for i, o in enumerate(obs):  # the landmarks follow the face on every frame
        assert o.landmarks[0, 0] == pytest.approx(boxes[i][0][0])


def test_tracker_reports_a_miss_and_redetects_each_frame_until_found():
    det = _FakeDetector({3: [[10, 10, 90, 90]]})
    tr = FaceTracker(det, _FakePredictor(det), detect_every=5)
    gray = np.zeros((120, 160), np.uint8)
    out = []
    for i in range(5):
        det.frame = i
        out.append(tr.step(gray))
    assert [o is None for o in out] == [True, True, True, False, False]
    assert det.calls == [0, 1, 2, 3]


@pytest.mark.parametrize("name", DETECTORS.list())
def test_every_registered_detector_finds_the_synthetic_face(name):
    import cv2

    from bah.stages.faces.detector import LandmarkPredictor
    from bah.stages.faces.sample import placement, synthetic_frame
    from bah.stages.faces.settings import FaceConfig

    det = DETECTORS.create(name, FaceConfig(detector=name, detect_downscale=0.8))
    frame = synthetic_frame(0, 320, 240, face_px=100)
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    found = det.detect(gray)
    assert len(found) >= 1
    # the box is in full-frame pixels (the detector saw a smaller frame) and holds the face centre
    M = placement(0, 320, 240, 25.0, 100)
    face_centre = M[:, :2] @ np.array([90.0, 110.0]) + M[:, 2]  # the nose area of the portrait crop
    best = max(found, key=lambda d: d.area)
    assert best.box[0] < face_centre[0] < best.box[2] and best.box[1] < face_centre[1] < best.box[3]
    assert 60 < best.box[2] - best.box[0] < 160
    lm = LandmarkPredictor()(gray, best.box)
    assert lm.shape == (68, 2) and np.isfinite(lm).all()

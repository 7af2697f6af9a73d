"""class_id.yaml and the per-video annotation YAML."""
import dataclasses

import numpy as np
import pytest
import yaml

from bah.data import (
    AnnotationLoader, VideoAnnotation, annotation_frame_counts, parse_timestamp, read_annotations, read_class_ids,
)

VID = "Videos/82557/Visite_1/82557 Question 5 2024-08-22 14-48-26 Video.mp4"
VID2 = "Videos/82620/Visite_1/82620_Question_7_2024-11-05_14-58-50_Video-DESKTOP-NQ55E0P.mp4"

ANNOTATION = f"""\
{VID}:
  global_ah: 1
  frame_annotation:
  - ['{VID}/frame-2.jpg', 1]
  - ['{VID}/frame-0.jpg', 0]
  - !!python/tuple ['{VID}/frame-1.jpg', 1]
  - ['{VID}/frame-3.jpg', 0]
  fr_detailed_ah:
  - [1, 2]
  time_detailed_ah:
  - !!python/tuple ['00:00:00.040', '00:01:02.120']
  certainty_ah: [3]
  all_cues:
  - {{audio: hesitation, body: null, facial: frown, language: "well, é", inconsistencies: null}}
  annotator_id: MGG
  transcript: "Bien sûr, je pense."
"{VID2}":
  global_ah: 0
  frame_annotation: []
  fr_detailed_ah: []
  time_detailed_ah: []
  certainty_ah: []
  all_cues: []
  annotator_id: XYZ
  transcript: Eat.
"""


def _ann(tmp_path, text=ANNOTATION, name="video_annotation_transcript.yaml"):
    p = tmp_path / name
    p.write_bytes(text.encode("utf-8"))
    return p


def test_class_ids(tmp_path):
    p = tmp_path / "class_id.yaml"
    p.write_bytes(b"With A-H: 1\nNo A-H: 0")  # the real file has no trailing newline
    assert read_class_ids(p) == {"With A-H": 1, "No A-H": 0}
    p.write_bytes(b"With A-H: 1\nNo A-H: 1")
    with pytest.raises(ValueError, match="not distinct"):
        read_class_ids(p)
    p.write_bytes(b"With A-H: yes\n")
    with pytest.raises(ValueError, match="non-integer"):
        read_class_ids(p)


def test_annotation_fields_order_tuples_and_accents(tmp_path):
    anns = read_annotations(_ann(tmp_path))
    a = anns[VID]
    assert isinstance(a, VideoAnnotation)
    assert a.global_label == 1
    assert a.frame_labels.dtype == np.uint8
    np.testing.assert_array_equal(a.frame_labels, [0, 1, 1, 0])  # ordered by frame index, not list order
    assert a.first_frame_index == 0 and a.n_frames == 4
    assert a.intervals_frames == ((1, 2),)
    assert a.intervals_seconds == (pytest.approx((0.04, 62.12)),)
    assert a.cues[0]["audio"] == "hesitation" and a.cues[0]["language"] == "well, é"
    assert a.annotator == "MGG" and a.transcript == "Bien sûr, je pense."
    b = anns[VID2]
    assert b.global_label == 0 and b.n_frames == 0 and b.first_frame_index is None
    assert b.intervals_frames == () and b.cues == ()


def test_certainty_is_never_exposed(tmp_path):
    a = read_annotations(_ann(tmp_path))[VID]
    names = {f.name for f in dataclasses.fields(a)}
    assert not any("certainty" in n for n in names)
    assert "certainty" not in repr(a)


def test_only_requested_videos_and_counts(tmp_path):
    p = _ann(tmp_path)
    assert list(read_annotations(p, [VID2, "Videos/none.mp4"])) == [VID2]
    assert annotation_frame_counts(p) == {VID: 4, VID2: 0}


def test_tuple_tag_is_safe(tmp_path):
    assert yaml.load("a: !!python/tuple [1, 2]", Loader=AnnotationLoader) == {"a": (1, 2)}
    with pytest.raises(yaml.YAMLError):
        yaml.load("a: !!python/object/apply:os.system ['true']", Loader=AnnotationLoader)
    p = _ann(tmp_path, "x: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ValueError, match=str(p.name)):
        read_annotations(p)


@pytest.mark.parametrize("field, value, message", [
    ("global_ah", "2", "global_ah"),
    ("frame_annotation", "[['v/frame-0.jpg', 0], ['v/frame-2.jpg', 1]]", "not consecutive"),
    ("frame_annotation", "[['v/frame-0.jpg', 7]]", "not 0 or 1"),
    ("fr_detailed_ah", "[[5, 3]]", "ends before it starts"),
    ("time_detailed_ah", "[['bad', '00:00:01.000']]", "bad timestamp"),
])
def test_bad_annotation_names_file_and_video(tmp_path, field, value, message):
    p = _ann(tmp_path, f"'{VID}':\n  {field}: {value}\n")
    with pytest.raises(ValueError, match=message) as exc:
        read_annotations(p)
    assert str(p) in str(exc.value) and "82557 Question 5" in str(exc.value)


def test_old_file_name_and_invalid_yaml(tmp_path):
    p = _ann(tmp_path, ANNOTATION, name="video_annotation.yaml")
    assert set(read_annotations(p)) == {VID, VID2}
    bad = _ann(tmp_path, "a: [1, 2\nb: 3\n", name="broken.yaml")
    with pytest.raises(ValueError, match=r"(?s)broken.yaml: invalid YAML.*line 1"):
        read_annotations(bad)


@pytest.mark.parametrize("text, seconds", [
    ("00:00:02.200", 2.2), ("01:02:03.5", 3723.5), ("02:03.250", 123.25), ("4.5", 4.5), (7, 7.0),
])
def test_parse_timestamp(text, seconds):
    assert parse_timestamp(text) == pytest.approx(seconds)

"""Whisper transcription YAML: tuple timestamps, open ends, restarting timelines."""
import pytest

from bah.data import read_transcription, repair_timeline

YML = """\
text: " Well, I think. Ça va, maybe. Done"
chunks:
- language: english
  text: " Well, I think."
  timestamp: !!python/tuple [0.0, 12.5]
- text: " Ça va,"
  timestamp: !!python/tuple [12.5, 29.0]
- language: french
  text: " maybe."
  timestamp: !!python/tuple [0.4, 10.0]
- text: " Done"
  timestamp: !!python/tuple [10.0, null]
"""


def _write(tmp_path, text=YML):
    p = tmp_path / "clip.yml"
    p.write_bytes(text.encode("utf-8"))
    return p


def test_restart_and_open_end_are_repaired(tmp_path):
    t = read_transcription(_write(tmp_path), duration=45.0)
    assert t.text.startswith(" Well, I think.")
    assert t.restarts == 1
    times = [(c.start, c.end) for c in t.chunks]
    assert times == [(0.0, 12.5), (12.5, 29.0), (29.4, 39.0), (39.0, 45.0)]
    assert [c.language for c in t.chunks] == ["english", None, "french", None]
    assert t.chunks[1].text == " Ça va,"
    starts = [c.start for c in t.chunks]
    assert starts == sorted(starts)


def test_open_end_without_duration_uses_start(tmp_path):
    t = read_transcription(_write(tmp_path))
    assert (t.chunks[-1].start, t.chunks[-1].end) == (39.0, 39.0)


def test_small_jitter_is_not_a_restart():
    times, restarts = repair_timeline([(0.0, 5.0), (4.5, 8.0), (8.0, None), (9.0, 10.0)])
    assert restarts == 0
    assert times == [(0.0, 5.0), (4.5, 8.0), (8.0, 9.0), (9.0, 10.0)]


def test_several_restarts():
    raw = [(0.0, 30.0), (0.0, 30.0), (0.0, 10.0)]
    times, restarts = repair_timeline(raw)
    assert restarts == 2 and times == [(0.0, 30.0), (30.0, 60.0), (60.0, 70.0)]


@pytest.mark.parametrize("text, message", [
    ("chunks:\n- text: a\n  timestamp: [1.0]\n", "chunk 0: timestamp"),
    ("chunks:\n- text: a\n  timestamp: [x, 1.0]\n", "not a number"),
    ("chunks:\n- text: a\n  timestamp: [null, 1.0]\n", "no start"),
    ("- just a list\n", "expected a mapping"),
])
def test_bad_transcription_names_file(tmp_path, text, message):
    p = _write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as exc:
        read_transcription(p)
    assert str(p) in str(exc.value)


OVERRUN = """\
text: " So. I think so. Yes."
chunks:
- text: " So."
  timestamp: !!python/tuple [-0.3, 0.8]
- text: " I think so."
  timestamp: !!python/tuple [1.0, 3.2]
- text: " Yes."
  timestamp: !!python/tuple [3.9, 6.5]
"""


def test_timestamps_outside_the_video_are_clipped_with_a_warning(tmp_path, caplog):
    path = _write(tmp_path, OVERRUN)
    with caplog.at_level("WARNING"):
        t = read_transcription(path, duration=4.0)
    assert [(c.start, c.end) for c in t.chunks] == [(0.0, 0.8), (1.0, 3.2), (3.9, 4.0)]
    assert t.clipped == 2
    warned = [r.getMessage() for r in caplog.records]
    assert any(str(path) in m and "chunk 0" in m for m in warned)
    assert any(str(path) in m and "chunk 2" in m for m in warned)
    # without a duration only the negative start is clipped
    assert read_transcription(path).clipped == 1

"""Participant / question parsing from video ids."""
import pytest

from bah.data import parse_video_id, participant_of, question_of


@pytest.mark.parametrize("vid, pid, q, date, suffix", [
    ("Videos/82725/Visite_1/82725_Question_1_2024-11-19_15-12-23_Video.mp4", "82725", 1, "2024-11-19_15-12-23", ""),
    ("Videos/82593/Visite_1/82593_Question_2_2024-10-02 16-27-50_Video-DESKTOP-NQ55E0P.mp4", "82593", 2,
     "2024-10-02_16-27-50", "-DESKTOP-NQ55E0P"),
    ("Videos/82557/Visite_1/82557 Question 5 2024-08-22 14-48-26 Video.mp4", "82557", 5, "2024-08-22_14-48-26", ""),
    ("82557 Question 5 2024-08-22 14-48-26 Video.mp4", "82557", 5, "2024-08-22_14-48-26", ""),
    # no digits at the start of the file name: the participant folder gives the id
    ("Videos/00042/Visite_1/clip_Question_3.mp4", "00042", 3, None, ""),
])
def test_parse_video_id(vid, pid, q, date, suffix):
    n = parse_video_id(vid)
    assert (n.pid, n.question, n.date, n.suffix) == (pid, q, date, suffix)
    assert participant_of(vid) == pid and question_of(vid) == q


@pytest.mark.parametrize("vid", ["", "   ", "Videos/abc/Visite_1/clip.mp4"])
def test_parse_video_id_rejects(vid):
    with pytest.raises(ValueError):
        parse_video_id(vid)

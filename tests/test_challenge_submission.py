"""Challenge submission files: the writer, the manifest, and the validator refusing each broken kind."""
import hashlib
import json

import pytest

from bah.apps.challenge.report import SelectionLeakError
from bah.apps.challenge.submission import (
    SubmissionError, probability_fields, read_template, validate_submission, write_submission,
)
from bah.core.files import write_json, write_text

IDS = [f"Videos/{80000 + i}/Visite_1/{80000 + i}_Question_{q}_2024-01-0{q}_10-00-00_Video.mp4"
       for i in range(3) for q in (1, 2)]
IDS[3] = "Videos/80001/Visite_1/80001 Question 2 2024-01-02 10-00-00 Video-DESKTOP-NQ55E0P.mp4"
P1 = [0.91234, 0.1, 0.59996, 0.6, 0.05, 0.77777]
THRESHOLD = 0.6


def test_p0_and_p1_sum_to_exactly_one_for_all_10001_four_decimal_values():
    for k in range(10001):
        p0, p1 = probability_fields(k / 10000)
        assert float(p0) + float(p1) == 1.0, (k, p0, p1)
        assert len(p0) == len(p1) == 6 and p1 == f"{k / 10000:.4f}"
    with pytest.raises(ValueError, match="outside"):
        probability_fields(1.2)


def _run(tmp_path, selection="oof", name="run"):
    run = tmp_path / name
    write_text(run / "predictions-test.csv",
               "video_id,p1,label\n" + "".join(f"{v},{p!r},{int(p >= THRESHOLD)}\n" for v, p in zip(IDS, P1)))
    write_json(run / "video-run.json", {
        "name": name, "threshold": THRESHOLD, "calibration": {"mode": "plateau"},
        "selection": {"split": selection, "n": 10, "touches_test": selection == "test"},
        "predictions": {"selection": "predictions-oof.csv", "test": "predictions-test.csv"}})
    return run


def test_written_trial_passes_the_validator_and_the_manifest_records_it(tmp_path):
    run, out = _run(tmp_path), tmp_path / "sub"
    dest = write_submission(run, out, 0)
    lines = dest.read_text().splitlines()
    assert dest.name == "trial-0.txt" and len(lines) == len(IDS)
    assert lines[0] == f"{IDS[0]},0.0877,0.9123,1"
    # 0.59996 is written as 0.6000, and the label follows the written value
    assert lines[2] == f"{IDS[2]},0.4000,0.6000,1"
    assert lines[3] == f"{IDS[3]},0.4000,0.6000,1"
    assert lines[4] == f"{IDS[4]},0.9500,0.0500,0"
    assert validate_submission(dest, IDS) == []
    assert validate_submission(dest, IDS, THRESHOLD) == []
    man = json.loads((out / "trials.json").read_text())["trials"]["0"]
    assert man["threshold"] == THRESHOLD and man["videos"] == 6 and man["positive_rate"] == pytest.approx(4 / 6)
    assert man["sha256"] == hashlib.sha256(dest.read_bytes()).hexdigest() and man["probabilities"] is True


def test_template_order_and_the_label_only_variant(tmp_path):
    run, out = _run(tmp_path), tmp_path / "sub"
    template = tmp_path / "template.txt"
    order = IDS[::-1]
    template.write_text("".join(f"{v},0.5000,0.5000,0\n" for v in order))
    assert read_template(template) == order
    dest = write_submission(run, out, 1, read_template(template), probs=False)
    assert dest.read_text().splitlines() == [f"{v},{int(float(f'{p:.4f}') >= THRESHOLD)}"
                                             for v, p in zip(order, P1[::-1])]
    assert validate_submission(dest, order) == []
    with pytest.raises(SubmissionError, match=r"template line 1: video 'Videos/9/x.mp4' has no test prediction"):
        write_submission(run, out, 2, ["Videos/9/x.mp4"] + IDS)


def test_at_most_five_trials_and_no_silent_overwrite(tmp_path):
    run, out = _run(tmp_path), tmp_path / "sub"
    for k in range(5):
        write_submission(run, out, k)
    with pytest.raises(SubmissionError, match="5 trials, trial-0 ... trial-4"):
        write_submission(run, out, 5)
    with pytest.raises(SubmissionError, match="trial-2.txt exists"):
        write_submission(run, out, 2)
    write_submission(run, out, 2, overwrite=True)
    assert sorted(json.loads((out / "trials.json").read_text())["trials"]) == ["0", "1", "2", "3", "4"]


def test_a_run_selected_on_test_cannot_be_submitted(tmp_path):
    with pytest.raises(SelectionLeakError):
        write_submission(_run(tmp_path, selection="test"), tmp_path / "sub", 0)


@pytest.fixture
def good(tmp_path):
    out = tmp_path / "sub"
    write_submission(_run(tmp_path), out, 0)
    return out / "trial-0.txt", (out / "trial-0.txt").read_text().splitlines()


def _broken(good, lines, name="trial-0.txt"):
    path = good[0].parent / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _only(problems, *needles):
    assert problems, "the file was accepted"
    assert any(all(n in p for n in needles) for p in problems), problems


def test_wrong_order_is_refused_with_the_line(good):
    lines = list(good[1])
    lines[1], lines[2] = lines[2], lines[1]
    _only(validate_submission(_broken(good, lines), IDS), "trial-0.txt:2:", "wrong order")


def test_one_changed_character_in_a_path_is_refused(good):
    lines = list(good[1])
    lines[4] = lines[4].replace("Visite_1", "Visite_2", 1)
    problems = validate_submission(_broken(good, lines), IDS)
    _only(problems, "trial-0.txt:5:", "unknown video")
    _only(problems, "template line 5", "missing")


def test_duplicate_line_is_refused(good):
    lines = list(good[1])
    lines[3] = lines[0]
    problems = validate_submission(_broken(good, lines), IDS)
    _only(problems, "trial-0.txt:4:", "duplicate", "line 1")
    _only(problems, "template line 4", "missing")


def test_missing_line_is_refused(good):
    problems = validate_submission(_broken(good, good[1][:-1]), IDS)
    _only(problems, "template line 6", "missing")
    _only(problems, "trial-0.txt:5:", "5 lines, the template 6")


def test_p0_plus_p1_off_by_1e4_is_refused(good):
    lines = list(good[1])
    path, p0, p1, label = lines[1].split(",")
    lines[1] = ",".join([path, f"{float(p0) + 1e-4:.4f}", p1, label])
    _only(validate_submission(_broken(good, lines), IDS), "trial-0.txt:2:", "not exactly 1.0")


def test_label_inconsistent_with_the_threshold_is_refused(good, tmp_path):
    lines = list(good[1])
    lines[4] = lines[4][:-1] + "1"  # p1 0.0500 labelled 1 while 0.6000 and 0.7778 are labelled 1, 0.1 is 0
    path = _broken(good, lines)
    _only(validate_submission(path, IDS), "trial-0.txt:2:", "no single threshold")
    _only(validate_submission(path, IDS, THRESHOLD), "trial-0.txt:5:", "threshold 0.6000")


def test_a_sixth_trial_is_refused(good):
    for k in range(1, 5):
        _broken(good, good[1], f"trial-{k}.txt")
    assert validate_submission(good[0].parent / "trial-4.txt", IDS) == []
    problems = validate_submission(_broken(good, good[1], "trial-5.txt"), IDS)
    _only(problems, "trial-5.txt:", "one too many")
    _only(problems, "6 trial files")


def test_field_count_bounds_and_labels(good):
    lines = list(good[1])
    lines[0] = lines[0] + ",x"
    lines[1] = lines[1].rsplit(",", 1)[0] + ",2"
    p, _, _, lab = lines[2].split(",")
    lines[2] = f"{p},-0.5000,1.5000,{lab}"
    lines[3] = lines[3].replace(",", ", ", 1)
    problems = validate_submission(_broken(good, lines), IDS)
    _only(problems, "trial-0.txt:1:", "5 fields")
    _only(problems, "trial-0.txt:2:", "label '2'")
    _only(problems, "trial-0.txt:3:", "outside [0, 1]")
    _only(problems, "trial-0.txt:4:", "spaces")

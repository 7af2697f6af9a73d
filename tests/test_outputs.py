"""Writes only under --out: report and train honour it (old names kept), synth never writes into a
folder it did not create."""
import sys
from pathlib import Path

import pytest

from bah.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_report import _run_folder  # noqa: E402  (the report tests' tiny run folder)


@pytest.mark.parametrize("flag", ["--out", "--dest"])
def test_report_writes_under_out(tmp_path, flag):
    run = _run_folder(tmp_path)
    assert main(["report", str(run), flag, str(tmp_path / "rep"), "--timelines", "1"]) == 0
    assert (tmp_path / "rep" / "report.md").is_file() and not (run / "report").exists()


def test_synth_refuses_a_folder_it_did_not_create(tmp_path, caplog):
    dataset = tmp_path / "real"
    (dataset / "split").mkdir(parents=True)
    (dataset / "split" / "train.txt").write_text("Videos/1/Visite_1/a.mp4,1\n")
    before = sorted(p.relative_to(dataset) for p in dataset.rglob("*"))
    assert main(["synth", "--out", str(dataset), "--subjects", "1"]) == 2
    assert "did not write" in caplog.text
    assert sorted(p.relative_to(dataset) for p in dataset.rglob("*")) == before


def test_synth_claims_new_and_empty_folders_and_reuses_its_own():
    from bah.synth.command import claim_folder

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        new, empty = Path(tmp) / "new", Path(tmp) / "empty"
        empty.mkdir()
        assert claim_folder(new) and claim_folder(empty)
        assert (new / ".synth").is_dir() and (empty / ".synth").is_dir()
        (new / "Videos").mkdir()
        assert claim_folder(new)  # ours: resumable


def test_bah_train_writes_runs_under_out(tmp_path, monkeypatch):
    from bah.train.dataset import write_synthetic_arrays

    monkeypatch.delenv("BAH_RUNS", raising=False)
    monkeypatch.chdir(tmp_path)
    data = write_synthetic_arrays(tmp_path / "out", {"train": [30, 40], "val": [30], "test": [30]}, {"vggish": 4})
    assert main(["train", "--out", str(data), "--model_name", "can", "--modality", "vggish+EXPR_continuous_label",
                 "--num_workers", "0", "--num_epochs", "1", "--exp_id", "o", "--save_plot", "False",
                 "--window_length", "16", "--hop_length", "8"]) == 0
    assert (data / "runs" / "BAH_DB" / "fold-0" / "id_o" / "passed.txt").is_file()
    assert not (tmp_path / "exps").exists()

"""Exit codes every stage shares: 0 all done, 1 some video failed, 2 usage/configuration
error with a one-line message naming the file (never a traceback)."""
import pytest

from bah.cli import main


@pytest.mark.parametrize("content, message", [
    ("Videos/1/Visite_1/a.mp4,1\nbadline\n", "train.txt:2: expected 'id,label,transcript'"),
    ("Videos/1/Visite_1/a.mp4,7\n", "train.txt:1: label 7 is not 0 or 1"),
])
def test_manifest_split_file_errors_are_messages(tmp_path, capsys, content, message):
    root = tmp_path / "root"
    (root / "split").mkdir(parents=True)
    (root / "split" / "train.txt").write_text(content)
    assert main(["manifest", "--data-root", str(root), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_manifest_without_split_files_is_a_configuration_error(tmp_path, capsys):
    (tmp_path / "root").mkdir()
    assert main(["manifest", "--data-root", str(tmp_path / "root"), "--out", str(tmp_path / "out")]) == 2
    assert "no split files" in capsys.readouterr().err


def test_stage_with_no_manifest_names_the_command(tmp_path, capsys, caplog):
    for cmd in ("faces", "features", "labels"):
        caplog.clear()
        assert main([cmd, "--out", str(tmp_path)]) == 2, cmd
        captured = capsys.readouterr()
        assert "bah manifest" in captured.err + captured.out + caplog.text, cmd


def test_unknown_set_section_is_rejected_like_an_unknown_key(tmp_path, capsys):
    assert main(["manifest", "--data-root", str(tmp_path), "--out", str(tmp_path), "--set", "manifest.wrokers=2"]) == 2
    assert "unknown setting(s) ['wrokers']" in capsys.readouterr().err
    assert main(["manifest", "--data-root", str(tmp_path), "--out", str(tmp_path), "--set", "manifets.workers=2"]) == 2
    err = capsys.readouterr().err
    assert "--set manifets.workers: unknown section 'manifets'" in err and "manifest.KEY" in err
    assert main(["manifest", "--data-root", str(tmp_path), "--out", str(tmp_path), "--set", "faces.size=64"]) == 2

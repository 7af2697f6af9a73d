"""Progress bars: off with --no-progress or TQDM_DISABLE, plain lines (no carriage returns) in a log file."""
import io

from bah.cli import main
from bah.core.progress import progress_bar


def test_tqdm_disable_and_explicit_disable(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert progress_bar(range(3), disable=False).disable
    monkeypatch.setenv("TQDM_DISABLE", "0")
    assert not progress_bar(range(3), file=io.StringIO()).disable
    assert progress_bar(range(3), disable=True).disable


def test_plain_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setenv("BAH_PROGRESS_INTERVAL", "0")
    log = io.StringIO()
    for _ in progress_bar(range(5), desc="videos", file=log):
        pass
    text = log.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[-1].startswith("videos: 100%") and "5/5" in lines[-1] and all(line.strip() for line in lines)


def test_every_command_takes_no_progress(monkeypatch, capsys):
    import os

    monkeypatch.setenv("TQDM_DISABLE", "0")  # restored after the test, whatever the command sets
    for name in ("features", "manifest", "status", "faces", "labels", "report"):
        try:
            main([name, "--help"])
        except SystemExit:
            pass
        assert "--no-progress" in capsys.readouterr().out, name
    assert main(["status", "--no-progress", "/nonexistent-folder"]) == 2
    assert os.environ["TQDM_DISABLE"] == "1"

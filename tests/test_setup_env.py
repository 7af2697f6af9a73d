"""tools/setup_env.sh never deletes a folder it did not create."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "setup_env.sh"


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("sha256sum")), reason="needs bash and sha256sum")
def test_a_foreign_bah_venv_is_refused_not_removed(tmp_path):
    foreign = tmp_path / "my-project"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("years of work")
    r = subprocess.run(["bash", str(SCRIPT)], env=dict(os.environ, BAH_VENV=str(foreign)), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "refusing to touch it" in r.stderr
    assert (foreign / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in foreign.iterdir()) == ["thesis.tex"]

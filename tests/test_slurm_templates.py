"""The sbatch templates under scripts/slurm/: valid bash, and every bah command they run
parses, with each flag they pass known to that command."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bah.cli import main
from bah.train.distributed import process_group_env

TEMPLATES = sorted((Path(__file__).resolve().parents[1] / "scripts" / "slurm").glob("*.sbatch"))


def _bah_commands(text):
    """(subcommand, flags) of every `python -m bah.cli` / `torchrun -m bah.cli` line, continuations joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    out = []
    for m in re.finditer(r"-m bah\.cli ([a-z-]+)([^\n]*)", joined):
        out.append((m.group(1), sorted(set(re.findall(r"(?<![\w-])(--[a-zA-Z][\w-]*)", m.group(2))))))
    return out


def test_there_are_templates_for_faces_features_and_training():
    assert {p.stem for p in TEMPLATES} >= {"faces", "features", "train", "train-srun"}


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_template_is_valid_bash_and_its_commands_parse(path, capsys):
    subprocess.run(["bash", "-n", str(path)], check=True)
    text = path.read_text()
    assert "#SBATCH --requeue" in text
    commands = _bah_commands(text)
    assert commands, f"{path.name} runs no bah command"
    for cmd, flags in commands:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        helptext = capsys.readouterr().out
        unknown = [f for f in flags if not re.search(re.escape(f) + r"\b", helptext)]
        assert not unknown, f"{path.name}: `bah {cmd}` does not know {unknown}"


def test_workers_come_from_the_allocation():
    text = (TEMPLATES[0].parent / "train.sbatch").read_text()
    assert "SLURM_CPUS_PER_TASK" in text and "--num_workers" in text
    assert "SLURM_CPUS_PER_TASK" in (TEMPLATES[0].parent / "train-srun.sbatch").read_text()


def test_ddp_from_srun_reads_the_slurm_task_variables():
    srun = {"SLURM_PROCID": "5", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8",
            "MASTER_ADDR": "node1"}
    assert process_group_env(srun) == (5, 8, 1)
    assert process_group_env({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "2", **srun}) == (2, 4, 2)  # torchrun wins
    # a batch script running python without srun: SLURM_NTASKS is set, but there is one process
    assert process_group_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) == (0, 1, 0)
    with pytest.raises(RuntimeError, match="MASTER_ADDR"):
        process_group_env({k: v for k, v in srun.items() if k != "MASTER_ADDR"})

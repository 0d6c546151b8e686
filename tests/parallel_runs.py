"""Run CLI commands as concurrent processes whose work overlaps (for the result-store tests)."""
import subprocess
import sys

# Each process imports its command's module (JAX, the study) first, then waits until every
# process is ready, so that their runs start together.
_TOGETHER = """
import pathlib, sys, time
from reskernel.cli import main
main.get_command(None, sys.argv[4])
ready = pathlib.Path(sys.argv[1])
(ready / sys.argv[2]).touch()
while len(list(ready.iterdir())) < int(sys.argv[3]):
    time.sleep(0.01)
main(sys.argv[4:], prog_name="reskernel")
"""


def run_together(tmp_path, commands, timeout=600) -> list:
    """Run the CLI argument lists `commands` as concurrent processes; returns their outputs."""
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _TOGETHER, str(ready), str(i), str(len(commands)), *args],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i, args in enumerate(commands)]
    outs = [p.communicate(timeout=timeout) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    return [out for out, _ in outs]

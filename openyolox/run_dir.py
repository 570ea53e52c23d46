"""Output folders of runs: ``--out`` if given, else the first free ``runs/<kind>/expN``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from openyolox.errors import ConfigError


def make_run_dir(out: Optional[Union[str, Path]], kind: str) -> Path:
    """Create the run folder and prove it is writable (a real write: permission bits say
    nothing for root); ConfigError naming the folder otherwise."""
    if out:
        path = Path(out)
    else:
        root, n = Path("runs") / kind, 1
        while (root / f"exp{n}").exists():
            n += 1
        path = root / f"exp{n}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"cannot write to the output folder {path}: {exc.strerror}; choose another "
                          f"with --out") from None
    return path

"""The run directory: run.h5, checkpoint.h5, run.xdmf and a lock against concurrent writers."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import CaseError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDirectory:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.run_file = self.path / "run.h5"
        self.checkpoint = self.path / "checkpoint.h5"
        self.xdmf = self.path / "run.xdmf"
        self.lock = self.path / "run.lock"
        self._locked = False

    def prepare(self, *, force: bool, resume: bool) -> None:
        if resume and not self.run_file.is_file():
            # Checked before anything is created: a refused resume leaves no empty folder behind.
            raise CaseError(f"cannot resume: {self.run_file} does not exist", table="output", key="dir")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CaseError(f"cannot create output directory {self.path}: {exc.strerror}",
                            table="output", key="dir") from None
        if not os.access(self.path, os.W_OK):
            raise CaseError(f"output directory {self.path} is not writable", table="output", key="dir")
        self._acquire()
        if resume:
            return
        try:
            if self.run_file.exists() and not force:
                raise CaseError(f"{self.run_file} already exists; use --force to overwrite it or "
                                "--resume to continue it", table="output", key="dir")
            if force:
                for p in (self.run_file, self.checkpoint, self.xdmf):
                    p.unlink(missing_ok=True)
        except BaseException:
            self.release()
            raise

    def _acquire(self) -> None:
        for _ in range(2):
            try:
                fd = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.lock.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid) and pid != os.getpid():
                    raise CaseError(f"another run (pid {pid}) is writing to {self.path}; wait for it "
                                    "or choose another -o directory", table="output", key="dir") from None
                self.lock.unlink(missing_ok=True)   # stale lock from a killed run
                continue
            except OSError as exc:
                raise CaseError(f"cannot write to output directory {self.path}: {exc.strerror}",
                                table="output", key="dir") from None
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self._locked = True
            return
        raise CaseError(f"cannot lock output directory {self.path}", table="output", key="dir")

    def release(self) -> None:
        if self._locked:
            self.lock.unlink(missing_ok=True)
            self._locked = False

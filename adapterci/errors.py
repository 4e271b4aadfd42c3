"""Domain errors. The library raises these; the CLI maps each class to an exit code in one place."""

from __future__ import annotations

import errno
import re


class AdapterCIError(Exception):
    """Base class: an expected failure with a message that tells the user what to do next."""

    exit_code = 2


class ConfigError(AdapterCIError):
    """Invalid configuration or usage: names the file, key and line. Exit 2."""

    exit_code = 2

    def __init__(self, problems: list[str] | str, path: str | None = None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.path = path
        head = f"invalid config {path}:" if path else "invalid configuration:"
        super().__init__(head + "".join(f"\n  - {p}" for p in self.problems))


class UsageError(AdapterCIError):
    """A command was called with inputs that cannot work (missing adapter, unknown ref). Exit 2."""

    exit_code = 2


class CheckFailed(AdapterCIError):
    """A data check failed. Exit 1."""

    exit_code = 1


class StageFailed(AdapterCIError):
    """A stage could not complete (bad data, broken model, disk full). Exit 1 unless the cause says otherwise."""

    exit_code = 1

    def __init__(self, stage: str, message: str, exit_code: int = 1):
        self.stage = stage
        self.exit_code = exit_code
        super().__init__(f"{stage}: {message}")


class GateFailed(AdapterCIError):
    """The gate verdict is FAIL. Exit 1."""

    exit_code = 1


class GateInconclusive(AdapterCIError):
    """The gate verdict is INCONCLUSIVE. Exit 3."""

    exit_code = 3


class RegistryError(AdapterCIError):
    """The registry could not complete an operation; refs are left where they were. Exit 1."""

    exit_code = 1


class FileSystemError(AdapterCIError):
    """The file system refused a read or write (disk full, read-only, no permission). Exit 1."""

    exit_code = 1
    HINTS = {errno.ENOSPC: "free some space (or point --run-dir / ADAPTERCI_CACHE_DIR elsewhere) and run it again",
             errno.EDQUOT: "free some space and run it again",
             errno.EFBIG: "the file is larger than this process may write",
             errno.EROFS: "the file system is read-only: use a writable --run-dir / ADAPTERCI_CACHE_DIR",
             errno.EACCES: "check the permissions", errno.EPERM: "check the permissions"}

    @classmethod
    def of(cls, exc: OSError) -> "FileSystemError":
        """The error of `exc`, naming the path, the system's reason and what to do."""
        if exc.errno is None and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
            _, dst, why = exc.args[0][0]  # shutil.Error from copytree: the first file that failed, as text
            found = re.match(r"\[Errno (\d+)\] ([^:]+)", str(why))
            exc = OSError(int(found.group(1)), found.group(2), dst) if found else OSError(None, str(why), dst)
        code = errno.errorcode.get(exc.errno or 0, "")
        where = f"{exc.filename}: " if exc.filename else ""
        hint = cls.HINTS.get(exc.errno or 0)
        return cls(f"{where}{exc.strerror or exc}{f' [{code}]' if code else ''}{f'; {hint}' if hint else ''}")


class InternalError(AdapterCIError):
    """An unexpected exception (a bug), flattened to one line outside tests. Exit 1."""

    exit_code = 1


class ReleaseRefused(AdapterCIError):
    """No trusted PASS verdict vouches for the adapter to release. Exit 1."""

    exit_code = 1

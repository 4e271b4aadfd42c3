"""Domain errors. The library raises these; the CLI maps each class to an exit code in one place."""

from __future__ import annotations


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

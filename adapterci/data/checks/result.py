"""What a check returns: pass or fail, and every failure with the file and line it is about."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapterci.data.load import Problem, Source


@dataclass(frozen=True)
class Failure:
    file: str
    line: int
    message: str

    @classmethod
    def at(cls, source: Source, message: str) -> "Failure":
        return cls(source.file, source.line, message)

    @classmethod
    def of(cls, problem: Problem) -> "Failure":
        return cls(problem.source.file, problem.source.line, problem.message)

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "message": self.message}


@dataclass
class CheckResult:
    """The outcome of one named check. `summary` is one human line; `details` holds figures for check.json."""

    name: str
    failures: list[Failure] = field(default_factory=list)
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

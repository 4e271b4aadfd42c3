"""Moving refs: `canary` advances on release, `promote` and `rollback` move `stable`, `retract_canary` moves
`canary` back to what `stable` serves.

Every move is one compare-and-swap of the ref (`Registry.set_ref` names the state it saw), done by `swap`: read
the ref, decide, write, and when another writer (or our own request whose answer was lost) moved it meanwhile,
read again and decide again. A ref's state carries its own history: `rollback` walks it back, and a release never
moves `canary` back to a commit it served before (so a rerun cannot undo a retraction).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

from adapterci.errors import RegistryError, UsageError
from adapterci.registry import Refs, Registry, open_registry
from adapterci.registry.base import VERSION_RE, RefRace, RefState, parse_version

MAX_ATTEMPTS = 8  # rounds of read-decide-write; each lost round means another writer moved the ref


@dataclass(frozen=True)
class Move:
    """What a writer wants a moving ref to become."""

    target: str
    history: tuple[str, ...]
    title: str


@dataclass(frozen=True)
class Swapped:
    """The outcome of `swap`: the refs and the ref's state as last read (or as written), and whether a write was
    sent (`tried`)."""

    refs: Refs
    first: RefState | None  # the state the first decision was made on
    state: RefState | None
    tried: bool


Decide = Callable[[Refs, "RefState | None"], "Move | None"]


def swap(reg: Registry, name: str, decide: Decide, again: str) -> Swapped:
    """Move the ref `name` as `decide(refs, state)` says (None: it is where it should be) by compare-and-swap,
    deciding again on every lost race; RegistryError after MAX_ATTEMPTS (`again` says what to run then)."""
    tried, first = False, None
    for attempt in range(MAX_ATTEMPTS):
        refs = reg.refs()
        state = refs.moving.get(name)
        first = state if attempt == 0 else first
        move = decide(refs, state)
        if move is None:
            return Swapped(refs, first, state, tried)
        try:
            tried = True
            reg.set_ref(name, move.target, move.history, state, move.title)
            return Swapped(refs, first, RefState(state.head if state else "", move.target, move.history), True)
        except RefRace:  # moved meanwhile (maybe by our own request whose answer was lost): look again
            after_race(attempt)
    raise RegistryError(f"`{name}` kept moving in {reg.url} ({MAX_ATTEMPTS} attempts): {again}")


def after_race(attempt: int) -> None:
    """Wait a little after losing a race (0.05 s doubling, at most 2 s): the winner's write may not show in the
    Hub's listings yet, and reading again at once would only lose again."""
    time.sleep(min(0.05 * 2 ** attempt, 2.0))


def _served(state: RefState | None, target: str) -> tuple[str, ...]:
    return (*(state.history if state else ()), target)


@dataclass
class RefMove:
    """The outcome of promote / rollback / retract_canary."""

    ref: str
    version: str | None
    commit: str
    previous: str | None
    no_op: bool
    registry: str

    def as_dict(self) -> dict:
        return asdict(self)


def advance_canary(reg: Registry, version: str, sha: str) -> tuple[bool, bool]:
    """Point `canary` at `sha` unless it already serves it, served it before (a retracted or superseded release
    stays where it was put) or serves a newer version. Returns (serves `sha` now, moved by this call)."""
    def decide(refs: Refs, state: RefState | None) -> Move | None:
        if state is not None and (sha in state.history or _newer(refs, state.target, version)):
            return None
        return Move(sha, _served(state, sha), f"canary -> {version}")

    done = swap(reg, "canary", decide, "run `adapterci release` again")
    serves = done.state is not None and done.state.target == sha
    return serves, done.tried and serves


def _newer(refs: Refs, commit: str | None, version: str) -> bool:
    """Whether `commit` carries a version tag newer than `version`."""
    tags = [t for t, s in refs.versions().items() if s == commit]
    return any(parse_version(t) > parse_version(version) for t in tags)


def promote(cfg, version: str | None = None, registry: Registry | None = None, canary: str | None = None) -> RefMove:
    """Move `stable` to the canary's commit, or to `version`. A no-op when it is already there. `canary`: the
    version or commit the caller analyzed: RegistryError, nothing moved, when `canary` no longer points at it."""
    if version is not None and not VERSION_RE.match(version):
        raise UsageError(f"{version!r} is not a version (expected vMAJOR.MINOR.PATCH, e.g. v0.1.0)")
    reg = registry or open_registry(cfg)
    with reg.lock():
        refs = reg.refs()
        if version is not None:
            target = refs.tags.get(version)
            if target is None:
                raise UsageError(f"unknown version {version} in {reg.url} (see `adapterci versions`)")
        else:
            target = refs.target("canary")
            if target is None:
                raise UsageError(f"{reg.url} has no `canary` yet: run `adapterci release` first")

        def decide(now: Refs, state: RefState | None) -> Move | None:
            if canary is not None and not _points_at(now, "canary", canary):
                raise RegistryError(f"`canary` in {reg.url} points at {_named(now, now.target('canary'))}, not at the "
                                    f"analyzed {canary}: nothing promoted; analyze the canary again")
            if state is not None and state.target == target:
                return None
            return Move(target, _served(state, target), f"stable -> {now.version_of(target) or target[:12]} (promote)")

        done = swap(reg, "stable", decide, "run `adapterci promote` again")
        return _result(reg, done.refs, target, done.first.target if done.first else None, no_op=not done.tried)


def _points_at(refs: Refs, ref: str, expected: str) -> bool:
    """Whether `ref` points at `expected`: a version tag, or a commit id (7 or more hex digits of it)."""
    target = refs.target(ref)
    if target is None:
        return False
    if VERSION_RE.match(expected):
        return refs.tags.get(expected) == target
    return len(expected) >= 7 and target.startswith(expected.lower())


def _named(refs: Refs, commit: str | None) -> str:
    return (refs.version_of(commit) or commit[:12]) if commit else "nothing"


def rollback(cfg, registry: Registry | None = None) -> RefMove:
    """Move `stable` back to the version it served before the current one: decided once, from the first read (a
    rerun after a lost answer never rolls back twice)."""
    reg = registry or open_registry(cfg)
    with reg.lock():
        refs = reg.refs()
        seen = refs.moving.get("stable")
        if seen is None or len(seen.history) < 2:
            raise UsageError(f"{reg.url} has no earlier stable version to roll back to "
                             f"({'`stable` was set only once' if seen else '`stable` was never set'})")
        target, history = seen.history[-2], seen.history[:-1]

        def decide(now: Refs, state: RefState | None) -> Move | None:
            if state == seen:  # not moved yet, or a read that lags behind the write: (re)try
                return Move(target, history, f"stable -> {now.version_of(target) or target[:12]} (rollback)")
            if state is not None and (state.target, state.history) == (target, history):
                return None  # our own write, whose answer was lost
            raise RegistryError(f"`stable` moved in {reg.url} while rolling back; nothing was changed by this call: "
                                "check `adapterci versions` and run `adapterci rollback` again if needed")

        done = swap(reg, "stable", decide, "run `adapterci rollback` again")
        return _result(reg, done.refs, target, seen.target, no_op=False)


def retract_canary(cfg, commit: str | None = None, registry: Registry | None = None) -> RefMove:
    """Move `canary` back to what `stable` serves. With `commit`, only while `canary` still serves that commit (a
    newer release is not touched: RegistryError). A no-op when `canary` already serves stable's commit."""
    reg = registry or open_registry(cfg)

    def decide(refs: Refs, state: RefState | None) -> Move | None:
        stable, current = refs.target("stable"), state.target if state else None
        if stable is None:
            raise UsageError(f"{reg.url} has no `stable` to move `canary` back to")
        if current == stable:
            return None
        if commit is not None and current != commit:
            raise RegistryError(f"`canary` in {reg.url} moved to {(current or 'nothing')[:12]} since the analysis "
                                f"of {commit[:12]}: not rolled back; analyze the new canary")
        return Move(stable, _served(state, stable), f"canary -> {refs.version_of(stable) or stable[:12]} (retracted)")

    with reg.lock():
        done = swap(reg, "canary", decide, "run it again")
        stable = done.refs.target("stable")
        return _result(reg, done.refs, stable, done.first.target if done.first else None, no_op=not done.tried,
                       ref="canary")


def _result(reg: Registry, refs: Refs, target: str, previous: str | None, no_op: bool, ref: str = "stable") -> RefMove:
    return RefMove(ref=ref, version=refs.version_of(target), commit=target,
                   previous=(refs.version_of(previous) or previous) if previous else None, no_op=no_op,
                   registry=reg.url)

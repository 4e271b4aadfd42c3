"""Moving refs: `canary` advances on release, `promote` and `rollback` move `stable`, `retract_canary` moves
`canary` back to what `stable` serves, and `main` (what an unpinned consumer gets) follows `stable`.

Every move is one compare-and-swap of the ref (`Registry.set_ref` names the state it saw), done by `swap`: read
the ref, decide, write, and when another writer (or our own request whose answer was lost) moved it meanwhile,
read again and decide again. After every write the files the ref now serves are read back and compared with its
version's; a ref found serving other files is rewritten by the next `swap` on it (a rerun repairs). A ref's
state carries its own history: `rollback` walks it back, and a release never moves `canary` back to a commit it
served before (so a rerun cannot undo a retraction).
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterator

from adapterci import settings
from adapterci.errors import RegistryError, UsageError
from adapterci.registry import Refs, Registry, open_registry
from adapterci.registry.base import MAIN, VERSION_RE, RefRace, RefState, parse_version
from adapterci.release.verify import VerificationFailed, served_problems

FIRST_WAIT_S, MAX_WAIT_S = 0.1, 5.0  # backoff after a lost round: doubling from FIRST_WAIT_S, at most MAX_WAIT_S


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
    replaced: str | None = None  # the head the last write sent replaced ("" when it created the ref)


Decide = Callable[[Refs, "RefState | None"], "Move | None"]


def rounds() -> Iterator[int]:
    """Round numbers for read-decide-write against other writers. Before each round after the first, wait with
    jitter (half of FIRST_WAIT_S doubling per round, at most MAX_WAIT_S, plus up to as much again at random): the
    winner's write may not show in the Hub's listings yet, and writers that lost together must not retry
    together. Stops when the next round could not start within ADAPTERCI_REGISTRY_RACE_S of the first."""
    budget, start, attempt = settings.current().registry_race_s, time.monotonic(), 0
    while True:
        yield attempt
        ceiling = min(FIRST_WAIT_S * 2 ** attempt, MAX_WAIT_S)
        wait = ceiling / 2 + random.uniform(0, ceiling / 2)
        if time.monotonic() - start + wait > budget:
            return
        time.sleep(wait)
        attempt += 1


def swap(reg: Registry, name: str, decide: Decide, again: str) -> Swapped:
    """Move the ref `name` as `decide(refs, state)` says (None: it is where it should be) by compare-and-swap,
    deciding again on every lost race, then read back what it serves (VerificationFailed if that is not exactly
    its version's files). A ref already where it should be but serving other files is rewritten. RegistryError
    when the races outlast ADAPTERCI_REGISTRY_RACE_S (`again` says what to run then)."""
    tried, first, replaced = False, None, None
    for attempt in rounds():
        refs = reg.refs()
        state = refs.moving.get(name)
        first = state if attempt == 0 else first
        try:
            move = decide(refs, state) or _repair(reg, name, state)
        except RefRace:  # `decide` knows this read is older than a write it depends on: read again
            continue
        if move is None:
            return Swapped(refs, first, state, tried, replaced)
        try:
            tried, replaced = True, state.head if state else ""
            head = reg.set_ref(name, move.target, move.history, state, move.title)
        except RefRace:  # moved meanwhile (maybe by our own request whose answer was lost): look again
            continue
        problems = served_problems(reg, head, move.target)
        if problems:
            raise VerificationFailed(f"read-back of `{name}` in {reg.url} after moving it to {_label(refs, move.target)}"
                                     f": commit {head[:12]} does not serve exactly that version's files "
                                     f"({'; '.join(problems)}). {again[0].upper()}{again[1:]} to repair it.")
        return Swapped(refs, first, RefState(head, move.target, move.history), True, replaced)
    raise RegistryError(f"`{name}` kept moving in {reg.url} (other writers won every round for "
                        f"ADAPTERCI_REGISTRY_RACE_S={settings.current().registry_race_s:g} s): {again}")


def _repair(reg: Registry, name: str, state: RefState | None) -> Move | None:
    """Rewrite a ref that names its version but serves other files (a move whose copy went wrong)."""
    if state is None or not state.target or not served_problems(reg, reg.serving(state), state.target):
        return None
    return Move(state.target, state.history, f"{name}: rewrite the files of {state.target[:12]} (read-back failed)")


def _label(refs: Refs, commit: str) -> str:
    return refs.version_of(commit) or commit[:12]


def _served(state: RefState | None, target: str) -> tuple[str, ...]:
    return (*(state.history if state else ()), target)


def follow_stable(reg: Registry, again: str, moved: Swapped | None = None) -> Swapped:
    """Move `main` to serve what `stable` serves (a no-op while it does, or while nothing was promoted). `moved`:
    the swap of `stable` just done; a listing that does not show it yet is read again (it lags behind)."""
    replaced = moved.replaced if moved is not None else None

    def decide(refs: Refs, state: RefState | None) -> Move | None:
        stable = refs.moving.get("stable")
        if replaced is not None and (stable is None or stable.head == replaced):
            raise RefRace("the listing does not show the move of `stable` yet")
        if stable is None or (state is not None and state.target == stable.target):
            return None
        return Move(stable.target, stable.history, f"main -> {_label(refs, stable.target)} (serves stable)")

    try:
        return swap(reg, MAIN, decide, again)
    except RegistryError as exc:
        raise type(exc)(f"`stable` is where it should be, but `main` did not follow it: {exc}") from None


@dataclass
class RefMove:
    """The outcome of promote / rollback / retract_canary."""

    ref: str
    version: str | None
    commit: str
    previous: str | None
    no_op: bool
    registry: str
    note: str | None = None  # why nothing was done, when that is not "already there"

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
        follow_stable(reg, "run `adapterci promote` again", done)
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


def rollback(cfg, from_version: str | None = None, registry: Registry | None = None) -> RefMove:
    """Move `stable` back to the version it served before the current one: decided once, from the first read (a
    rerun after a lost answer never rolls back twice). With `from_version`, only while `stable` serves that
    version: otherwise a no-op that says what `stable` serves (a rerun of a finished rollback changes nothing)."""
    if from_version is not None and not VERSION_RE.match(from_version):
        raise UsageError(f"--from {from_version!r} is not a version (expected vMAJOR.MINOR.PATCH, e.g. v0.1.0)")
    reg = registry or open_registry(cfg)
    again = f"run `adapterci rollback{f' --from {from_version}' if from_version else ''}` again"
    with reg.lock():
        refs = reg.refs()
        seen = refs.moving.get("stable")
        if from_version is not None:
            if from_version not in refs.tags:
                raise UsageError(f"unknown version {from_version} in {reg.url} (see `adapterci versions`)")
            if seen is None or seen.target != refs.tags[from_version]:
                follow_stable(reg, again)  # finishes a rollback interrupted after moving `stable`
                serves = _label(refs, seen.target) if seen else "nothing"
                return RefMove(ref="stable", version=refs.version_of(seen.target) if seen else None,
                               commit=seen.target if seen else "", previous=None, no_op=True, registry=reg.url,
                               note=f"`stable` serves {serves}, not {from_version}: nothing to roll back")
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

        done = swap(reg, "stable", decide, again)
        follow_stable(reg, again, done)
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

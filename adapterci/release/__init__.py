"""Releasing adapters: publish a version (`publish`), move `canary` and `stable` (`refs`), check what is published
(`verify`), describe it (`card`: manifest and model card) and say how to serve it (`serving`).

The registry backends below (adapterci.registry) only store; every decision about versions and refs is here."""

from adapterci.release.publish import ReleaseResult, next_version, release
from adapterci.release.refs import RefMove, promote, retract_canary, rollback

__all__ = ["RefMove", "ReleaseResult", "next_version", "promote", "release", "retract_canary", "rollback"]

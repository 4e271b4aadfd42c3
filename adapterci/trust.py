"""Trust domains: who wrote a stage output, and so whether a release may rely on it.

A run belongs to one trust domain, named by `ADAPTERCI_TRUST_DOMAIN`: `default-branch` (the release workflow, on
a push to the default branch), `pr` (the PR GPU workflow, on a pull request's data) or `local` (the default: a
person's own machine). Caches are kept per domain (`RunDir`'s `cache_dir`), and eval results and gate verdicts
record the domain that wrote them (`adapterci.provenance`); `release` refuses a verdict of an untrusted domain.
See docs/self-hosted-runner.md."""

from __future__ import annotations

from pydantic import Field, field_validator

from adapterci import settings
from adapterci.configbase import StrictModel
from adapterci.errors import UsageError

DOMAINS = ("default-branch", "pr", "local")
UNTRUSTED = ("pr",)


def trust_domain() -> str:
    """The trust domain of this process (`ADAPTERCI_TRUST_DOMAIN`, default `local`)."""
    value = settings.current().trust_domain
    if value not in DOMAINS:
        raise UsageError(f"{settings.TRUST_DOMAIN}={value!r}: must be one of {', '.join(DOMAINS)}")
    return value


def trusted(domain: object) -> bool:
    """Whether a record written in `domain` may vouch for a release."""
    return domain in DOMAINS and domain not in UNTRUSTED


class TrustConfig(StrictModel):
    """How a trusted run treats the machine it runs on (adapterci.reuse, docs/trusted-runs.md)."""

    shared_runner_reason: str | None = Field(None, description="Lets a `default-branch` run in CI go on when its runner shows that other jobs used it (a persistent self-hosted runner, where a pull request's job may have run): say why that is acceptable here. The run then reuses nothing cached and recomputes every stage. Without it such a run refuses (exit 2).")

    @field_validator("shared_runner_reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must say why (a sentence), or be left out")
        return value

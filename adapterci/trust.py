"""Trust domains: who wrote a stage output, and so whether a release may rely on it.

A run belongs to one trust domain, named by `ADAPTERCI_TRUST_DOMAIN`: `default-branch` (the release workflow, on
a push to the default branch), `pr` (the PR GPU workflow, on a pull request's data) or `local` (the default: a
person's own machine). Caches are kept per domain (`RunDir`'s `cache_dir`), and eval results and gate verdicts
record the domain that wrote them (`adapterci.provenance`); `release` refuses a verdict of an untrusted domain.
See docs/self-hosted-runner.md."""

from __future__ import annotations

from adapterci import settings
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

"""Failure analysis: which training rows made the candidate regress (see `attribute.explain`)."""

from adapterci.explain.attribute import explain

__all__ = ["explain"]

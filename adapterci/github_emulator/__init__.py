"""A small emulator of the GitHub REST endpoints `adapterci pr` calls (tests reach it through GITHUB_API_URL)."""

from adapterci.github_emulator.server import GitHubEmulator

__all__ = ["GitHubEmulator"]

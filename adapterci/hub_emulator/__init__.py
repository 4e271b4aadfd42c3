"""A local emulator of the Hugging Face Hub API (like LocalStack for AWS): tests and dry runs of `hf://` registries."""

from adapterci.hub_emulator.faults import Fault
from adapterci.hub_emulator.server import HubEmulator

__all__ = ["Fault", "HubEmulator"]

"""tfysim: offline routing simulator and cost-optimisation benchmark for LLM-gateway traffic."""

from simulator.errors import TfysimError

__version__ = "0.1.0"
__all__ = ["TfysimError", "__version__"]

"""The DP marginal-based generator: selection, measurement, estimation, sampling."""

from privsynth.generator.model import MarginalModel
from privsynth.generator.synthesizer import Synthesizer

__all__ = ["MarginalModel", "Synthesizer"]

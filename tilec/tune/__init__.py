"""The autotuner: `tc.autotune` over `tc.kernel`, its resource and cost models, the parallel
compilation of candidates, timing on the device, and the tuning database."""
from __future__ import annotations

from tilec.tune.autotuner import Autotuner, Report, autotune
from tilec.tune.cost import Candidate, CostModel, RooflineModel
from tilec.tune.database import TuningDatabase, TuningKey
from tilec.tune.resources import DeviceLimits, KernelProfile
from tilec.tune.space import Config

__all__ = ["Autotuner", "Candidate", "Config", "CostModel", "DeviceLimits", "KernelProfile",
           "Report", "RooflineModel", "TuningDatabase", "TuningKey", "autotune"]

"""Resolution networks (``nets``) and the map normalisation shared by training and inference."""

from locres.models.nets import CompactResNet, DeepResPaperNet, count_parameters
from locres.models.normalise import standardise_map

__all__ = ["CompactResNet", "DeepResPaperNet", "count_parameters", "standardise_map"]

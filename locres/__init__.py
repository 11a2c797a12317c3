"""locres: local resolution estimation of cryo-EM maps (DeepRes and the classic estimators)."""

__version__ = "0.1.0"

from locres.errors import LocresError  # noqa: E402

__all__ = ["LocresError", "__version__"]

"""stems: split music into drums, bass, other and vocals with a four-headed mask CNN."""

from .config import SOURCES
from .errors import StemsError
from .separator import Separator

__all__ = ["SOURCES", "Separator", "StemsError"]
__version__ = "0.1.0"

"""stems: split music into stems (by default drums, bass, other and vocals; a model's card names
its own) with a mask CNN, one head per stem."""

from .errors import StemsError
from .separator import Separator

__all__ = ["Separator", "StemsError"]
__version__ = "0.1.0"

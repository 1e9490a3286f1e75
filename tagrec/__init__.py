"""tagrec: a managed recommender platform. `import tagrec; tagrec.Client()` is the SDK."""

from sdk import *  # noqa: F403
from sdk import __all__ as __all__  # noqa: F401

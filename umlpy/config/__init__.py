"""The sandbox's configuration: each option declared once (options.py),
its values parsed and checked once (values.py), held typed (config.py),
and described from the declaration (render.py)."""
from .config import Config  # noqa: F401
from .options import BY_NAME, COMMAND_LINE, OPTIONS, Option  # noqa: F401

"""Optional dependencies: import them on first use, or say which extra installs them."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """An optional feature was used without the extra that installs its dependency."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module`` for ``feature``; if it is missing, say which extra to install.

    ``require("pyarrow", "data", "Writing a dataset")`` returns the module, or raises
    :class:`MissingExtraError` with ``pip install 'odyssey-sync[data]'`` in its message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        raise MissingExtraError(
            f"{feature} needs the optional package {top!r}, which is not installed; "
            f"install it with: pip install 'odyssey-sync[{extra}]'"
        ) from exc

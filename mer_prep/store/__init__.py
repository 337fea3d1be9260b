"""The versioned feature store: ``versions`` plans and names a version, ``writer`` writes it,
``reader`` reads it, ``storage_schemas/`` declares its layout and ``layout`` is the code's side
of that declaration (group and branch names, the typed root and split attributes).

``open_store`` and ``FeatureStore`` are imported on first use: workers that only write never
pay for the reader's xarray and dask imports.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mer_prep.store.reader import FeatureStore, open_store

__all__ = ["FeatureStore", "open_store"]


def __getattr__(name: str):
    if name in __all__:
        from mer_prep.store import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'mer_prep.store' has no attribute {name!r}")

"""The versioned feature store: ``writer`` writes, ``reader`` reads, ``storage_schemas/`` declares."""

from mer_prep.store.reader import FeatureStore, open_store

__all__ = ["FeatureStore", "open_store"]

"""Frozen audio features: computed once per (backbone identity, file content) and cached on disk."""

from sept.features.cache import FeatureCache, default_cache_dir
from sept.features.extract import FeatureSet, extract_features

__all__ = ["FeatureCache", "FeatureSet", "default_cache_dir", "extract_features"]

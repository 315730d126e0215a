"""Datasets: clip tables from CSVs or class folders, the benchmark registry, splits and manifests."""

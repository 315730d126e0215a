"""Datasets: clip tables from CSVs or class folders, the benchmark registry, splits and manifests.

Light to import (no audio or hub libraries); checks and downloads live in ``sept.data.check`` and
``sept.data.download``.
"""

from sept.data.clips import Clip, class_names, load_clips
from sept.data.dataset import (
    AudioFolderDataset,
    Dataset,
    Fold,
    FoldColumnDataset,
    GroupHoldoutDataset,
    HeldOutDataset,
    Split,
    TrainTestDataset,
    load_dataset,
)
from sept.data.manifest import (
    Manifest,
    few_shot_manifest,
    held_out_split,
    manifest_clips,
    manifest_path,
    read_manifest,
)
from sept.data.names import readable_name
from sept.data.registry import (
    BENCHMARK_DATASETS,
    DatasetInfo,
    dataset_info,
    get_dataset,
    list_datasets,
    open_dataset,
    register_dataset,
)
from sept.data.sampling import (
    base_new_split,
    resolve_subset,
    sample_few_shot,
    stratified_split,
)

__all__ = [
    "BENCHMARK_DATASETS",
    "AudioFolderDataset",
    "Clip",
    "Dataset",
    "DatasetInfo",
    "Fold",
    "FoldColumnDataset",
    "GroupHoldoutDataset",
    "HeldOutDataset",
    "Manifest",
    "Split",
    "TrainTestDataset",
    "base_new_split",
    "class_names",
    "dataset_info",
    "few_shot_manifest",
    "get_dataset",
    "held_out_split",
    "list_datasets",
    "load_clips",
    "load_dataset",
    "manifest_clips",
    "manifest_path",
    "open_dataset",
    "read_manifest",
    "readable_name",
    "register_dataset",
    "resolve_subset",
    "sample_few_shot",
    "stratified_split",
]

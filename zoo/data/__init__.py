"""Datasets: specs (shapes, classes, normalization), torchvision readers, the in-memory loader, the eval set."""

from zoo.data.datasets import DataOptions, dataset_available, default_data_root, load_split, resolve_root
from zoo.data.evalset import EvalSet, load_eval_set, normalize
from zoo.data.loader import BatchLoader, augment_batch, make_loader
from zoo.data.specs import DatasetSpec, get_dataset_spec, list_datasets, register_dataset

__all__ = ["BatchLoader", "DataOptions", "DatasetSpec", "EvalSet", "augment_batch", "dataset_available",
           "default_data_root", "get_dataset_spec", "list_datasets", "load_eval_set", "load_split", "make_loader",
           "normalize", "register_dataset", "resolve_root"]

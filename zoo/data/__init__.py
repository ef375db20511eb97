"""Datasets: specs (shapes, classes, normalization), torchvision readers, the in-memory loader."""

from zoo.data.datasets import dataset_available, default_data_root, load_split, resolve_root
from zoo.data.loader import BatchLoader, augment_batch, make_loader
from zoo.data.specs import DatasetSpec, get_dataset_spec, list_datasets, register_dataset

__all__ = ["BatchLoader", "DatasetSpec", "augment_batch", "dataset_available", "default_data_root",
           "get_dataset_spec", "list_datasets", "load_split", "make_loader", "register_dataset", "resolve_root"]

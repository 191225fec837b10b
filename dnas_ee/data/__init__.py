"""Data sets, seeded splits, host-side batching and on-device augmentation.

``load_dataset(config.data)`` returns four normalized host splits (train, val,
calib, test) of ``digits`` (scikit-learn, embedded), CIFAR-10/100 and SVHN
(official local archives), or a prepared tfds data set (``tfds:<name>``).
Nothing is downloaded: missing data is a ``DataError`` that says where to put it.
"""
from dnas_ee.data.augment import augment_batch
from dnas_ee.data.dataset import DataError, Dataset, DataSpecError, Split
from dnas_ee.data.batching import batch_indices, epoch_permutation
from dnas_ee.data.load import load_dataset

__all__ = [
    "DataError", "DataSpecError", "Dataset", "Split", "augment_batch", "batch_indices",
    "epoch_permutation", "load_dataset",
]

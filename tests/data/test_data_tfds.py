"""tfds:<name>: a tiny data set really prepared (ArrayRecord) in tmp_path, and the error paths.

``tfds.testing.mock_data`` is not used: it mocks ``data_source`` but leaves the builder
without splits, so it cannot stand in for a prepared data set. Building a 3-class,
4x4 data set with ``download_and_prepare`` takes milliseconds and needs no TensorFlow
(its image feature is a ``Tensor``, since encoding ``Image`` features needs TensorFlow).
"""
from __future__ import annotations

import numpy as np
import pytest

from dnas_ee.data import DataError, load_dataset

tfds = pytest.importorskip("tensorflow_datasets")

N_TRAIN, N_TEST, CLASSES = 30, 9, 3


def _examples(n: int, seed: int):
  rng = np.random.default_rng(seed)
  for i in range(n):
    yield i, {"image": rng.integers(0, 256, (4, 4, 1), dtype=np.uint8), "label": i % CLASSES}


class DnasEeTinyFake(tfds.core.GeneratorBasedBuilder):
  """Registered as ``dnas_ee_tiny_fake``; only ever prepared under tmp_path."""
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(4, 4, 1), dtype=np.uint8),
        "label": tfds.features.ClassLabel(num_classes=CLASSES)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(N_TRAIN, 0),
            "test": self._generate_examples(N_TEST, 1)}

  def _generate_examples(self, n, seed):
    yield from _examples(n, seed)


@pytest.fixture(scope="module")
def prepared_dir(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("tfds")
  DnasEeTinyFake(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
  return data_dir


def config(name: str, directory, **overrides):
  return dict(name=name, dir=str(directory), seed=0, val_fraction=0.2, calib_fraction=0.1,
              **overrides)


def test_prepared_tfds_dataset_loads(prepared_dir):
  data = load_dataset(config("tfds:dnas_ee_tiny_fake", prepared_dir))
  assert data.name == "tfds:dnas_ee_tiny_fake"
  assert data.image_shape == (4, 4, 1) and data.num_classes == CLASSES
  assert (len(data.train), len(data.val), len(data.calib), len(data.test)) == (21, 6, 3, 9)
  assert data.train.images.dtype == np.float32 and data.test.labels.dtype == np.int32
  assert sorted(data.test.labels.tolist()) == sorted(i % CLASSES for i in range(N_TEST))
  # The test split is the official one: de-normalized, it is the generated pixels (in the
  # order tfds shuffled them into when preparing).
  restored = (data.test.images * np.float32(data.std[0]) + np.float32(data.mean[0])) * 255
  np.testing.assert_allclose(restored, np.rint(restored), atol=1e-3)
  as_bytes = lambda images: sorted(bytes(im) for im in images.astype(np.uint8))
  assert as_bytes(np.rint(restored)) == as_bytes(np.stack(
      [ex["image"] for _, ex in _examples(N_TEST, 1)]))
  np.testing.assert_allclose(data.train.images.mean(), 0.0, atol=1e-5)


def test_unprepared_tfds_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(DataError, match="'mnist' is not prepared") as e:
    load_dataset(config("tfds:mnist", tmp_path))
  assert str(tmp_path) in str(e.value) and "tfds build mnist" in str(e.value)


def test_unknown_tfds_dataset(tmp_path):
  with pytest.raises(DataError, match="'no_such_data_set_xyz' is neither registered"):
    load_dataset(config("tfds:no_such_data_set_xyz", tmp_path))

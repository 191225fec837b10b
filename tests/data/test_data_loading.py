"""load_dataset: digits, CIFAR-10/100 and SVHN (fake official-layout files), the real CIFAR-10
archive when present, seeded stratified splits, normalization, and every error path."""
from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import ml_collections
import numpy as np
import pytest
import scipy.io

from dnas_ee.config import ConfigError, base_config
from dnas_ee.data import DataError, Dataset, load_dataset
from dnas_ee.data import cifar, load, splits, svhn

CIFAR10_DIR = Path(os.environ.get("DNAS_EE_CIFAR10_DIR")
                   or Path(__file__).resolve().parents[2].parent / "shared/data/cifar10")


def data_config(**overrides) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(base_config().data.to_dict())
  cfg.update(overrides)
  return cfg


def check_dataset(data: Dataset, image_shape, num_classes):
  assert data.image_shape == image_shape and data.num_classes == num_classes
  for split in (data.train, data.val, data.calib, data.test):
    assert split.images.dtype == np.float32 and split.labels.dtype == np.int32
    assert split.images.shape == (len(split.labels), *image_shape)
    assert split.labels.min() >= 0 and split.labels.max() < num_classes
    assert np.isfinite(split.images).all()


# ---------------------------------------------------------------------------------------------
# digits


@pytest.fixture(scope="module")
def digits():
  return load_dataset(data_config(name="digits", seed=0))


def test_digits_shapes_and_sizes(digits):
  check_dataset(digits, (8, 8, 1), 10)
  # 1797 images: test 25%, val 20%, calib 10% of the whole set, the rest trains.
  assert [len(s) for s in (digits.test, digits.val, digits.calib)] == [449, 359, 180]
  assert len(digits.train) == 1797 - 449 - 359 - 180


def test_digits_train_split_is_normalized(digits):
  assert abs(digits.train.images.mean()) < 1e-5
  assert abs(digits.train.images.std() - 1.0) < 1e-5
  # Statistics are those of the train split, in [0, 1] units (digits are 0..16 / 16).
  raw = load.load_digits()
  idx = load.split_indices(raw, load.parse_data_config(data_config(seed=0)))["train"]
  np.testing.assert_allclose(digits.mean, [raw.images[idx].mean() / 16], rtol=1e-6)
  np.testing.assert_allclose(digits.std, [raw.images[idx].std() / 16], rtol=1e-6)
  assert abs(digits.test.images.mean()) > 1e-4  # other splits are not re-centred


def test_digits_same_seed_identical_other_seed_differs(digits):
  again = load_dataset(data_config(name="digits", seed=0))
  for a, b in zip((digits.train, digits.val, digits.calib, digits.test),
                  (again.train, again.val, again.calib, again.test)):
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
  other = load_dataset(data_config(name="digits", seed=1))
  assert len(other.val) == len(digits.val)
  assert not np.array_equal(other.val.images, digits.val.images)


def test_digits_splits_are_disjoint_cover_all_and_stratified():
  raw = load.load_digits()
  index = load.split_indices(raw, load.parse_data_config(data_config(seed=3)))
  all_idx = np.concatenate(list(index.values()))
  assert len(all_idx) == len(np.unique(all_idx)) == 1797
  counts = np.bincount(raw.labels, minlength=10)
  for name, frac in (("val", 0.2), ("calib", 0.1), ("test", 0.25)):
    got = np.bincount(raw.labels[index[name]], minlength=10)
    expected = counts * len(index[name]) / 1797
    assert np.all(np.abs(got - expected) <= 1.0), (name, got, expected)


def test_limits_are_stratified_nested_and_leave_other_splits_alone(digits):
  small = load_dataset(data_config(seed=0, limit_train=100, limit_test=50))
  assert len(small.train) == 100 and len(small.test) == 50
  assert len(small.val) == len(digits.val) and len(small.calib) == len(digits.calib)
  assert np.all(np.abs(np.bincount(small.train.labels, minlength=10) - 10) <= 1)
  raw = load.load_digits()
  idx = {k: load.split_indices(raw, load.parse_data_config(data_config(seed=0, limit_train=k)))
         for k in (50, 100, 0)}
  assert set(idx[50]["train"]) < set(idx[100]["train"]) < set(idx[0]["train"])
  np.testing.assert_array_equal(idx[50]["val"], idx[0]["val"])


def test_plain_dict_config_works():
  data = load_dataset(dict(name="digits", seed=0, val_fraction=0.2, calib_fraction=0.1,
                           test_fraction=0.25))
  assert len(data.train) == 809


@pytest.mark.parametrize("overrides, needle", [
    (dict(name="cifar-10"), "did you mean 'cifar10'"),
    (dict(name="tfds:"), "tfds:<name>"),
    (dict(val_fraction=0.5, calib_fraction=0.3), "leave nothing"),
    (dict(val_fraction=1.5), "data.val_fraction=1.5"),
    (dict(limit_train=-1), "data.limit_train"),
    (dict(seed=-2), "data.seed"),
    (dict(test_fraction=0.0), "test_fraction"),
])
def test_bad_config_values_are_config_errors(overrides, needle):
  with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
    load_dataset(data_config(**overrides))


def test_missing_or_mistyped_config_field():
  with pytest.raises(ConfigError, match="no field 'val_fraction'"):
    load_dataset(dict(name="digits", seed=0))
  with pytest.raises(ConfigError, match="data.seed='0' must be an int"):
    load_dataset(dict(name="digits", seed="0", val_fraction=0.2, calib_fraction=0.1,
                      test_fraction=0.2))


# ---------------------------------------------------------------------------------------------
# fake CIFAR archives in the official layout


def cifar_batches(variant: cifar.CifarVariant, per_batch: int, seed: int = 0) -> dict:
  """Tiny batches, as the official pickles: bytes keys, uint8 N x 3072, labels as lists."""
  rng = np.random.default_rng(seed)
  key = variant.label_key.encode()
  out = {}
  for i, name in enumerate(variant.train_files + variant.test_files):
    labels = [(i + k) % variant.num_classes for k in range(per_batch)]
    out[name] = {b"batch_label": f"batch {name}".encode(), key: labels,
                 b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"filenames": [f"{k}.png".encode() for k in range(per_batch)]}
  return out


def write_cifar_archive(path: Path, variant: cifar.CifarVariant, batches: dict,
                        skip: tuple[str, ...] = ()) -> Path:
  with tarfile.open(path, "w:gz") as tar:
    folder = tarfile.TarInfo(variant.folder)
    folder.type = tarfile.DIRTYPE
    tar.addfile(folder)
    for name, batch in batches.items():
      if name in skip:
        continue
      blob = batch if isinstance(batch, bytes) else pickle.dumps(batch, protocol=2)
      info = tarfile.TarInfo(f"{variant.folder}/{name}")
      info.size = len(blob)
      tar.addfile(info, io.BytesIO(blob))
  return path


def expected_images(batch: dict) -> np.ndarray:
  return batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


CIFAR_CASES = [(cifar.CIFAR10, "cifar10", 20), (cifar.CIFAR100, "cifar100", 100)]


@pytest.mark.parametrize("variant, name, per_batch", CIFAR_CASES)
def test_fake_cifar_archive_loads(tmp_path, variant, name, per_batch):
  batches = cifar_batches(variant, per_batch)
  write_cifar_archive(tmp_path / variant.archive, variant, batches)
  raw = cifar.load_cifar(variant, str(tmp_path))
  np.testing.assert_array_equal(raw.images, np.concatenate(
      [expected_images(batches[n]) for n in variant.train_files]))
  np.testing.assert_array_equal(raw.test_images, expected_images(batches[variant.test_files[0]]))
  key = variant.label_key.encode()
  np.testing.assert_array_equal(raw.labels, np.concatenate(
      [batches[n][key] for n in variant.train_files]))
  # Pixel (i, j) of channel c is data[c * 1024 + i * 32 + j] (R, G, B planes, row-major).
  data = batches[variant.train_files[0]][b"data"]
  assert raw.images[0, 2, 5, 1] == data[0, 1024 + 2 * 32 + 5]

  data = load_dataset(data_config(name=name, dir=str(tmp_path), seed=0))
  check_dataset(data, (32, 32, 3), variant.num_classes)
  n_train = per_batch * len(variant.train_files)
  assert (len(data.val), len(data.calib)) == (round(0.2 * n_train), round(0.1 * n_train))
  assert len(data.train) == n_train - len(data.val) - len(data.calib)
  assert len(data.test) == per_batch
  np.testing.assert_allclose(data.train.images.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)


def test_extracted_folder_loads_like_the_archive(tmp_path):
  variant = cifar.CIFAR10
  batches = cifar_batches(variant, 20)
  write_cifar_archive(tmp_path / variant.archive, variant, batches)
  from_archive = cifar.load_cifar(variant, str(tmp_path))
  folder = tmp_path / "extracted" / variant.folder
  folder.mkdir(parents=True)
  for name, batch in batches.items():
    (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
  for directory in (folder.parent, folder):  # data.dir may also be the folder itself
    raw = cifar.load_cifar(variant, str(directory))
    np.testing.assert_array_equal(raw.images, from_archive.images)
    np.testing.assert_array_equal(raw.test_labels, from_archive.test_labels)


def test_truncated_archive(tmp_path):
  variant = cifar.CIFAR10
  path = write_cifar_archive(tmp_path / variant.archive, variant, cifar_batches(variant, 20))
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
  with pytest.raises(DataError, match="cifar-10-python.tar.gz is corrupt") as e:
    load_dataset(data_config(name="cifar10", dir=str(tmp_path)))
  assert "cifar-10-python.tar.gz" in str(e.value) and "--config.data.dir" in str(e.value)


def test_archive_with_a_missing_member(tmp_path):
  variant = cifar.CIFAR10
  write_cifar_archive(tmp_path / variant.archive, variant, cifar_batches(variant, 20),
                      skip=("data_batch_3",))
  with pytest.raises(DataError, match="member cifar-10-batches-py/data_batch_3 is missing"):
    load_dataset(data_config(name="cifar10", dir=str(tmp_path)))


def test_random_bytes_archive(tmp_path):
  (tmp_path / "cifar-100-python.tar.gz").write_bytes(np.random.default_rng(0).bytes(5000))
  with pytest.raises(DataError, match="CIFAR-100 archive .*cifar-100-python.tar.gz is corrupt"):
    load_dataset(data_config(name="cifar100", dir=str(tmp_path)))


def test_garbled_member_is_named(tmp_path):
  variant = cifar.CIFAR10
  batches = cifar_batches(variant, 20)
  batches["data_batch_2"] = pickle.dumps(batches["data_batch_2"], protocol=2)[:300]
  write_cifar_archive(tmp_path / variant.archive, variant, batches)
  with pytest.raises(DataError, match="member cifar-10-batches-py/data_batch_2 cannot be read"):
    cifar.load_cifar(variant, str(tmp_path))


@pytest.mark.parametrize("edit, needle", [
    (lambda b: b.update({b"data": b[b"data"][:, :3000]}), "expected 20 x 3072"),
    (lambda b: b.update({b"labels": [10] * 20}), r"expected \[0, 9\]"),
    (lambda b: b.pop(b"data"), "key b'data' is missing"),
    (lambda b: b.update({b"data": b[b"data"].astype(np.float32)}), "expected a uint8 array"),
])
def test_inconsistent_batches_are_rejected(tmp_path, edit, needle):
  variant = cifar.CIFAR10
  batches = cifar_batches(variant, 20)
  edit(batches["data_batch_4"])
  write_cifar_archive(tmp_path / variant.archive, variant, batches)
  with pytest.raises(DataError, match=f"data_batch_4 cannot be read .*{needle}"):
    cifar.load_cifar(variant, str(tmp_path))


class _Evil:
  def __reduce__(self):
    return (os.getcwd, ())


def test_pickles_that_reference_code_are_refused(tmp_path):
  variant = cifar.CIFAR10
  batches = cifar_batches(variant, 20)
  batches["test_batch"][b"batch_label"] = _Evil()
  write_cifar_archive(tmp_path / variant.archive, variant, batches)
  with pytest.raises(DataError, match="references posix.getcwd|references nt.getcwd"):
    cifar.load_cifar(variant, str(tmp_path))


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn"])
def test_missing_or_empty_data_dir(tmp_path, name):
  with pytest.raises(DataError, match="data.dir"):
    load_dataset(data_config(name=name, dir=str(tmp_path / "absent")))
  with pytest.raises(DataError, match="data.dir"):
    load_dataset(data_config(name=name, dir=""))


def test_dir_without_the_archive_names_what_it_wants(tmp_path):
  with pytest.raises(DataError) as e:
    load_dataset(data_config(name="cifar10", dir=str(tmp_path)))
  message = str(e.value)
  for needle in ("cifar-10-python.tar.gz", "cifar-10-batches-py/", str(tmp_path),
                 "--config.data.dir", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"):
    assert needle in message, (needle, message)


# ---------------------------------------------------------------------------------------------
# fake SVHN .mat files


def write_svhn(directory: Path, n_train=30, n_test=12, seed=0) -> dict:
  rng = np.random.default_rng(seed)
  mats = {}
  for name, n in ((svhn.TRAIN_FILE, n_train), (svhn.TEST_FILE, n_test)):
    mats[name] = {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                  "y": (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)}
    scipy.io.savemat(directory / name, mats[name])
  return mats


def test_fake_svhn_loads(tmp_path):
  mats = write_svhn(tmp_path)
  raw = svhn.load_svhn(str(tmp_path))
  np.testing.assert_array_equal(raw.images[7], mats[svhn.TRAIN_FILE]["X"][..., 7])
  assert raw.labels[9] == 0 and raw.labels[0] == 1  # label 10 is the digit 0
  data = load_dataset(data_config(name="svhn", dir=str(tmp_path)))
  check_dataset(data, (32, 32, 3), 10)
  assert (len(data.train), len(data.val), len(data.calib), len(data.test)) == (21, 6, 3, 12)


@pytest.mark.parametrize("damage, needle", [
    ("truncate", "train_32x32.mat is corrupt"),
    ("random", "train_32x32.mat is corrupt"),
    ("no_y", "variable 'y' is missing"),
])
def test_broken_svhn_files(tmp_path, damage, needle):
  mats = write_svhn(tmp_path)
  path = tmp_path / svhn.TRAIN_FILE
  if damage == "truncate":
    path.write_bytes(path.read_bytes()[:5000])
  elif damage == "random":
    path.write_bytes(np.random.default_rng(1).bytes(5000))
  else:
    scipy.io.savemat(path, {"X": mats[svhn.TRAIN_FILE]["X"]})
  with pytest.raises(DataError, match=needle):
    load_dataset(data_config(name="svhn", dir=str(tmp_path)))


def test_missing_svhn_test_file(tmp_path):
  write_svhn(tmp_path)
  (tmp_path / svhn.TEST_FILE).unlink()
  with pytest.raises(DataError, match="test_32x32.mat not found in .*--config.data.dir"):
    load_dataset(data_config(name="svhn", dir=str(tmp_path)))


# ---------------------------------------------------------------------------------------------
# the real CIFAR-10 archive (skipped when absent)


@pytest.fixture(scope="module")
def real_cifar10():
  if not (CIFAR10_DIR / cifar.CIFAR10.archive).is_file() and not (
      CIFAR10_DIR / cifar.CIFAR10.folder).is_dir():
    pytest.skip(f"real CIFAR-10 not found in {CIFAR10_DIR}: put cifar-10-python.tar.gz there or "
                "set DNAS_EE_CIFAR10_DIR to the directory that holds it")
  return load_dataset(data_config(name="cifar10", dir=str(CIFAR10_DIR), seed=0,
                                  limit_train=2000, limit_test=1000))


def test_real_cifar10(real_cifar10):
  data = real_cifar10
  check_dataset(data, (32, 32, 3), 10)
  assert [len(s) for s in (data.train, data.val, data.calib, data.test)] == [2000, 10000, 5000,
                                                                             1000]
  for split, per_class in ((data.train, 200), (data.val, 1000), (data.calib, 500),
                           (data.test, 100)):
    assert np.all(np.abs(np.bincount(split.labels, minlength=10) - per_class) <= 1)
  np.testing.assert_allclose(data.train.images.mean(axis=(0, 1, 2)), 0.0, atol=1e-4)
  # The train split's statistics are close to CIFAR-10's (0.491, 0.482, 0.446).
  np.testing.assert_allclose(data.mean, [0.491, 0.482, 0.446], atol=0.02)


def test_stratified_order_prefixes_are_balanced():
  labels = np.repeat(np.arange(4), [10, 20, 30, 40])
  order = splits.stratified_order(labels, seed=5)
  assert sorted(order) == list(range(100))
  for m in (10, 33, 50, 77):
    got = np.bincount(labels[order[:m]], minlength=4)
    assert np.all(np.abs(got - np.array([10, 20, 30, 40]) * m / 100) <= 1), (m, got)

"""The model file: one gzip-compressed pickle, sha256-checked, unpickled calling only the types its models are made of.

The file is one pickled call, `model_from_parts(FORMAT, arrays, compiled, model)`: `model` is the
scikit-learn model pickled on its own, `compiled` the plain tables `pipeline.tagging.compiled`
scores with (None for a model it cannot reproduce), both made from the same fitted object by
`pack`. The arrays they share (the linear weights) are stored once, in `arrays`: the model's pickle
names them by their place there. `pickle.load` and `joblib.load` of the file call
`model_from_parts` and get the scikit-learn model; `load` reads the parts without calling it, so
tagging unpickles `compiled` alone and never imports scikit-learn. Nothing here imports it.
Files of the earlier formats (the model pickled alone, or written by joblib) still load.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import pickle
from pathlib import Path

import numpy as np

from pipeline.errors import ModelError
from pipeline.files import atomic_write_bytes

FORMAT = "pipeline-model/2"
GZIP_MAGIC = b"\x1f\x8b"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def meta_path(model_path: Path) -> Path:
    return Path(model_path).with_suffix(".json")


def read_meta(model_path: Path, mpath: Path | None = None) -> dict:
    """Read the metadata file of a model, or raise ModelError saying what is wrong."""
    mpath = Path(mpath) if mpath else meta_path(model_path)
    try:
        meta = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{mpath}: metadata file missing; a model is only loaded with its recorded sha256") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{mpath}: metadata is unreadable or corrupted ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise ModelError(f"{mpath}: metadata has no sha256 of the model file")
    return meta


# Every global a model file of this project refers to: measured by loading the models of every
# `train.features` and `train.classifier` option, paragraph and context models, with the numpy scalar
# types a pickle may name. A pickle naming anything else (os.system, builtins.exec, ...) is refused before
# it is called: the types skops would be told to trust, without skops' file size and load time.
_NUMPY_SCALARS = "bool_ float16 float32 float64 int8 int16 int32 int64 intc uint8 uint16 uint32 uint64 str_"
TRUSTED_GLOBALS = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        *(("numpy", name) for name in _NUMPY_SCALARS.split()),
        *(
            (core, name)
            for core in ("numpy.core.multiarray", "numpy._core.multiarray")
            for name in ("_reconstruct", "scalar")
        ),
        # how the C pickler writes an array with protocol 5
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("pipeline.model", "ContextModel"),
        ("pipeline.model", "WordSegmenter"),
        ("pipeline.model", "normalize_all"),
        ("sklearn.calibration", "CalibratedClassifierCV"),
        ("sklearn.calibration", "_CalibratedClassifier"),
        ("sklearn.calibration", "_SigmoidCalibration"),
        ("sklearn.feature_extraction.text", "TfidfTransformer"),
        ("sklearn.feature_extraction.text", "TfidfVectorizer"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("sklearn.model_selection._split", "GroupKFold"),
        ("sklearn.pipeline", "FeatureUnion"),
        ("sklearn.pipeline", "Pipeline"),
        ("sklearn.preprocessing._function_transformer", "FunctionTransformer"),
        ("sklearn.svm._classes", "LinearSVC"),
    }
)


class UntrustedGlobal(Exception):
    """A pickle names a function or class outside TRUSTED_GLOBALS."""


class _OnlyTrusted:
    """An unpickler mixin that resolves no global outside TRUSTED_GLOBALS."""

    def find_class(self, module, name):
        if (module, name) not in TRUSTED_GLOBALS:
            raise UntrustedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


class _TrustedPickle(_OnlyTrusted, pickle.Unpickler):
    """The standard C unpickler with trusted globals; persistent ids name the arrays stored beside the pickle."""

    def __init__(self, file, arrays: list | None = None):
        super().__init__(file)
        self.arrays = arrays or []

    def persistent_load(self, pid):
        if type(pid) is not int or not 0 <= pid < len(self.arrays):
            raise pickle.UnpicklingError(f"a reference to stored array {pid!r}, which the file does not have")
        return self.arrays[pid]


def _arrays(obj, out: list, seen: set) -> list:
    """Every numpy array inside nested dicts, lists and tuples, each once, in the order met."""
    if type(obj) is np.ndarray:
        if id(obj) not in seen:
            seen.add(id(obj))
            out.append(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _arrays(v, out, seen)
    elif isinstance(obj, list | tuple):
        for v in obj:
            _arrays(v, out, seen)
    return out


class _SharingPickler(pickle.Pickler):
    """The standard C pickler, writing the arrays of `index` (id -> place) as persistent ids."""

    def __init__(self, file, index: dict):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.index = index

    def persistent_id(self, obj):
        return self.index.get(id(obj)) if type(obj) is np.ndarray else None


def _check_format(fmt: str) -> None:
    if fmt != FORMAT:
        raise pickle.UnpicklingError(f"a model file of format {fmt!r}; this code reads {FORMAT!r}")


def model_from_parts(fmt: str, arrays: list, compiled: dict | None, model: bytes):
    """What unpickling a model file calls: the scikit-learn model, its shared arrays put back (trusted types only)."""
    _check_format(fmt)
    return _TrustedPickle(io.BytesIO(model), arrays).load()


class _Packed:
    """Pickled as the call model_from_parts(FORMAT, arrays, compiled, model)."""

    def __init__(self, arrays: list, compiled: dict | None, model: bytes):
        self.parts = (FORMAT, arrays, compiled, model)

    def __reduce__(self):
        return model_from_parts, self.parts


class _Parts(tuple):
    """The arguments of the file's call to model_from_parts, read without making it."""

    def __new__(cls, *parts):
        return super().__new__(cls, parts)


class _FilePickle(_TrustedPickle):
    """The unpickler of a whole file: its call to model_from_parts gives the parts instead."""

    def find_class(self, module, name):
        if (module, name) == (__name__, "model_from_parts"):
            return _Parts
        return super().find_class(module, name)


def pack(model, compiled: dict | None) -> bytes:
    """The file's bytes: `model` pickled with every array it shares with `compiled` named by its place in `arrays`.

    `mtime=0` keeps the time out of the gzip header, so identical models are identical bytes.
    """
    arrays = _arrays(compiled, [], set())
    for a in arrays:
        # One dtype object per kind, whoever made the array (numba's kernels make their own, depending
        # on whether they were compiled in this process or read from its cache): pickle writes a
        # dtype it has not seen by identity again, so the bytes would depend on that history.
        if a.dtype.fields is None and a.dtype is not np.dtype(a.dtype.str):
            a.dtype = np.dtype(a.dtype.str)
    buf = io.BytesIO()
    _SharingPickler(buf, {id(a): i for i, a in enumerate(arrays)}).dump(model)
    data = pickle.dumps(_Packed(arrays, compiled, buf.getvalue()), protocol=pickle.HIGHEST_PROTOCOL)
    return gzip.compress(data, compresslevel=3, mtime=0)


def write(path: Path, data: bytes) -> str:
    """Write the file's bytes atomically; return their sha256 for the metadata."""
    atomic_write_bytes(Path(path), lambda f: f.write(data))
    return hashlib.sha256(data).hexdigest()


def unpack(data: bytes, name: str, model: bool = True) -> tuple[object | None, dict | None]:
    """(the scikit-learn model, the compiled tables) of a model file's bytes (`name` for messages), calling nothing but TRUSTED_GLOBALS.

    With `model=False` the scikit-learn model is unpickled only when there are no tables to score
    with (a model the compiled path cannot reproduce, or a file of an earlier format).
    """
    if data[:2] != GZIP_MAGIC:  # a file joblib wrote (models saved before the gzip pickle)
        from joblib.numpy_pickle import NumpyUnpickler
        from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

        class _TrustedJoblib(_OnlyTrusted, NumpyUnpickler):
            pass

        with _validate_fileobject_and_memmap(io.BytesIO(data), name, None) as (fobj, _):
            if isinstance(fobj, str):  # a pickle of joblib < 0.10, with its arrays in companion files
                raise UntrustedGlobal("a joblib format older than 0.10")
            return _TrustedJoblib(name, fobj, True).load(), None
    found = _FilePickle(io.BytesIO(gzip.decompress(data))).load()
    if type(found) is not _Parts:
        return found, None  # the earlier format: the model pickled alone
    fmt, arrays, compiled, estimator = found
    _check_format(fmt)
    if model or compiled is None:
        return model_from_parts(fmt, arrays, compiled, estimator), compiled
    return None, compiled


def read_checked(path: Path, meta_file: Path | None = None) -> tuple[bytes, dict]:
    """(the bytes of a model file, its metadata) once the bytes match the sha256 the metadata records, else ModelError."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found (run `dvc repro` to train one)")
    meta = read_meta(path, meta_file)
    data = path.read_bytes()  # read once: hashed, then unpickled
    actual = hashlib.sha256(data).hexdigest()
    if actual != meta["sha256"]:
        raise ModelError(
            f"{path}: sha256 {actual[:12]}... does not match {meta['sha256'][:12]}... recorded in "
            f"its metadata; refusing to unpickle a file that may have been altered or truncated"
        )
    return data, meta


def load(path: Path, meta_file: Path | None = None, model: bool = True) -> tuple[object | None, dict | None, dict]:
    """(the scikit-learn model, the compiled tables, the metadata) of a saved model, after checking its sha256.

    A pickle runs code when loaded: a file that does not match its recorded sha256, or that names
    anything outside TRUSTED_GLOBALS, is refused before any of it runs. The metadata is `model.json`
    beside the model unless `meta_file` names another. `model=False`: see `unpack`.
    """
    data, meta = read_checked(path, meta_file)
    try:
        estimator, compiled = unpack(data, str(path), model)
    except UntrustedGlobal as e:
        raise ModelError(
            f"{path}: refused: the file calls {e}, which is not part of this project's models "
            "(a pickle that runs code?); nothing in it was run"
        ) from None
    except Exception as e:  # a corrupted pickle can fail in many ways
        raise ModelError(f"{path}: cannot be loaded ({type(e).__name__}: {e})") from None
    return estimator, compiled, meta

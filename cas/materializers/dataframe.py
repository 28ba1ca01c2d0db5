"""numpy arrays, pandas DataFrames and Arrow tables (the ``dataframe`` extra).

Nothing here imports numpy, pandas or pyarrow until an object of theirs is
saved or one of their versions is loaded: an object can only be an ndarray if
numpy is already imported, so ``can_save`` looks in ``sys.modules``.

Formats load without running code: ``.npy`` is read with
``allow_pickle=False`` (object arrays are refused at save time, and a forged
one is refused at load time); DataFrames and tables are Parquet, which holds
data and a schema, never code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas.errors import MaterializerNotFoundError, UnsafeLoadError, UnsupportedDataError
from cas.materializers.base import Materializer, Payload, verified_file

if TYPE_CHECKING:
    from cas.version import ArtifactVersion

__all__ = ["NumpyMaterializer", "PandasMaterializer", "ArrowMaterializer"]

_EXTRA_HINT = "install the dataframe extra: pip install 'cas-store[dataframe]'"


def _require(module: str, what: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise MaterializerNotFoundError(f"{what} needs {module.split('.')[0]}: {_EXTRA_HINT}") from None


def _instance_of(obj: Any, module: str, attr: str) -> bool:
    mod = sys.modules.get(module)
    cls = getattr(mod, attr, None) if mod is not None else None
    return cls is not None and isinstance(obj, cls)


class NumpyMaterializer(Materializer):
    """``numpy.ndarray`` as ``.npy`` (never pickled); loads as an ndarray."""

    name = "numpy"
    priority = 10

    def can_save(self, obj: Any) -> bool:
        return _instance_of(obj, "numpy", "ndarray")

    def save(self, obj: Any, scratch: Path) -> Payload:
        np = _require("numpy", "saving an array")
        if obj.dtype.hasobject:
            raise UnsupportedDataError(
                "an array of Python objects can only be stored pickled: pass materializer='pickle'"
            )
        path = scratch / "array.npy"
        np.save(path, obj, allow_pickle=False)
        return path

    def load(self, version: ArtifactVersion) -> Any:
        fmt = _require("numpy.lib.format", f"loading {version.ref}")
        with verified_file(version) as f:
            try:
                # read_array reads only the .npy format: no .npz, no bare pickle.
                return fmt.read_array(f, allow_pickle=False)
            except ValueError as e:
                if "pickle" in str(e):
                    raise UnsafeLoadError(f"{version.ref} holds a pickled object array; refusing to unpickle it") from None
                raise


class PandasMaterializer(Materializer):
    """``pandas.DataFrame`` as Parquet (index and dtypes kept); loads as a DataFrame."""

    name = "pandas"
    priority = 10

    def can_save(self, obj: Any) -> bool:
        return _instance_of(obj, "pandas", "DataFrame")

    def save(self, obj: Any, scratch: Path) -> Payload:
        _require("pyarrow.parquet", "saving a DataFrame")
        path = scratch / "frame.parquet"
        try:
            obj.to_parquet(path, engine="pyarrow")
        except (ValueError, TypeError) as e:  # e.g. non-string column names, mixed-type object columns
            raise UnsupportedDataError(f"this DataFrame cannot be stored as Parquet: {e}") from None
        except Exception as e:
            if type(e).__module__.startswith("pyarrow"):
                raise UnsupportedDataError(f"this DataFrame cannot be stored as Parquet: {e}") from None
            raise
        return path

    def load(self, version: ArtifactVersion) -> Any:
        _require("pandas", f"loading {version.ref}")
        pq = _require("pyarrow.parquet", f"loading {version.ref}")
        with verified_file(version) as f:
            return pq.read_table(f).to_pandas()


class ArrowMaterializer(Materializer):
    """``pyarrow.Table`` as Parquet; loads as a Table."""

    name = "arrow"
    priority = 10

    def can_save(self, obj: Any) -> bool:
        return _instance_of(obj, "pyarrow", "Table")

    def save(self, obj: Any, scratch: Path) -> Payload:
        pq = _require("pyarrow.parquet", "saving an Arrow table")
        path = scratch / "table.parquet"
        pq.write_table(obj, path)
        return path

    def load(self, version: ArtifactVersion) -> Any:
        pq = _require("pyarrow.parquet", f"loading {version.ref}")
        with verified_file(version) as f:
            return pq.read_table(f)

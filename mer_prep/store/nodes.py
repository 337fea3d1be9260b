"""Typed access to the nodes and values of a zarr hierarchy.

zarr types ``group[path]`` as ``Array | Group`` and ``array[selection]`` as an array-like or a
scalar, whatever the store's layout says is there. The store's modules know which node kind
each path holds and that what they read is a numpy array (zarr's default buffers are numpy's);
these helpers say so in one place, and raise ``SchemaError`` where the store holds the other
kind of node than its layout names (damaged metadata) instead of failing later on a missing
attribute.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import zarr
from numpy.typing import NDArray
from zarr.core.indexing import Selection
from zarr.core.sync import sync

from mer_prep.errors import SchemaError


def array_at(group: zarr.Group, path: str) -> zarr.Array:
    """The array at ``path`` (``/``-separated, relative to ``group``)."""
    node = group[path]
    if not isinstance(node, zarr.Array):
        raise SchemaError(f"{group.path or '/'}: {path!r} is a group where an array belongs")
    return node


def group_at(group: zarr.Group, path: str) -> zarr.Group:
    """The group at ``path`` (``/``-separated, relative to ``group``)."""
    node = group[path]
    if not isinstance(node, zarr.Group):
        raise SchemaError(f"{group.path or '/'}: {path!r} is an array where a group belongs")
    return node


def async_array_at(group: zarr.AsyncGroup, path: str) -> zarr.AsyncArray[Any]:
    """The array at ``path`` of an asynchronous group (fetched here, on zarr's event loop)."""
    node = sync(group.getitem(path))
    if not isinstance(node, zarr.AsyncArray):
        raise SchemaError(f"{group.path or '/'}: {path!r} is a group where an array belongs")
    return node


def read_values(array: zarr.Array, selection: Selection = ...) -> NDArray[Any]:
    """``array[selection]`` as a numpy array: the array zarr returns as it is, a scalar (an
    integer index into a 1-d array) as a 0-d array. Shape: the selection's; dtype: the array's."""
    return np.asarray(array[selection])


def read_orthogonal(array: zarr.Array, rows: NDArray[np.signedinteger[Any]]) -> NDArray[Any]:
    """The rows ``rows`` of ``array`` along its first axis: (len(rows), *array.shape[1:])."""
    return np.asarray(array.get_orthogonal_selection((rows,)))

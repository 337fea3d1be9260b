"""Which Blosc codec the store writes: decode speed, bytes on disk and a LOSO run's data time.

    python bench/codec.py [--subjects 4] [--clips 2] [--repeats 5] [--mib 48] [--recipes ...]
                          [--codecs zstd-1 lz4-9 ...] [--work bench/.work]

For every built-in recipe it writes a store of the bench's synthetic CASME II look-alike (640x480)
through the real writer (in this process, no Prefect; written once per dataset size and recipe,
reused by later runs), then makes one copy per candidate codec whose sample arrays are
re-encoded with that codec (one more commit on ``main``; table, attributes and content checksums
unchanged, so the copy reads as a store and every read is checked against what was written).
All candidates keep bitshuffle and the CRC-32C that ends every chunk. In one run, alternating the
codecs on every repeat (this VM drifts by 20-30 % within minutes) and taking medians, it prints
per array and codec:

  bytes     the stored chunks' bytes (CRC included), and their ratio to zstd-1's (the codec of
            the versions written before lz4);
  dec, enc  MiB/s (decoded bytes) of Blosc alone on one thread over the array's chunks in memory:
            the codec's own speed (decoding: every training run's first read of a version;
            encoding: the preprocessing workers' writes);
  bulk      MiB/s of ``FeatureStore.array`` (fetch, CRC-32C, Blosc on threads: the bulk reader,
            what ``load_store_data`` calls), the decoded-array cache off: a first run's read,
            and the whole load's speed against ``np.load`` of the same rows saved as ``.npy``;

and per recipe the data time of a whole LOSO run as the trainer has it: every recipe array read in
bulk, then every fold cut (``build_fold``). A few stored samples stand for a dataset: each load
reads every sample ``k`` times (up to CASME II's 255 clips, and at most ``--mib`` decoded MiB per
recipe; a chunk is compressed on its own, so a repeated chunk costs what one costs) and the folds
are cut from the same data tiled ``k`` times over up to 26 subjects (CASME II's). Cutting works on
decoded arrays, so it is measured once and added to every codec's load. The last table sums every
recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ["MER_PREP_CACHE"] = "off"  # every read decodes: the first run on a version

import numpy as np
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec

sys.path.insert(0, str(Path(__file__).parent))
from folds import cut_every_fold, loso_folds
from pipeline import ensure_dataset

from mer_prep.pipeline.local import commit_version
from mer_prep.recipes import builtin_recipes
from mer_prep.store import open_store
from mer_prep.store.repo import MAIN, open_repository
from mer_prep.store.writer import CHECKSUM, COMPRESSOR
from mer_prep.train.data import StoreData, load_store_data


@dataclass(frozen=True)
class Codec:
    """One Blosc configuration (bitshuffle always): ``cname`` at ``clevel``."""

    cname: str
    clevel: int

    @property
    def label(self) -> str:
        return f"{self.cname}-{self.clevel}"

    def zarr_codec(self) -> BloscCodec:
        return BloscCodec(cname=self.cname, clevel=self.clevel, shuffle="bitshuffle")

    def numcodecs(self) -> Blosc:
        return Blosc(cname=self.cname, clevel=self.clevel, shuffle=Blosc.BITSHUFFLE)


#: the writer's codec for new versions
CURRENT = Codec(str(COMPRESSOR.cname.value), int(COMPRESSOR.clevel))
#: what every ratio is against: the codec of the versions written before lz4 (zstd level 1)
BASELINE = Codec("zstd", 1)
CANDIDATES = (
    Codec("zstd", 1),
    Codec("zstd", 3),
    Codec("lz4", 5),
    Codec("lz4", 9),
    Codec("lz4hc", 1),
)
#: the tiled LOSO run: CASME II's subjects and clips (fewer when ``--mib`` caps the size)
LOSO_SUBJECTS, LOSO_CLIPS = 26, 255


def write_store(root: Path, path: Path, recipe: str) -> None:
    """``recipe``'s store of ``root`` through the real writer, unless an earlier run wrote it."""
    if (path / "done").exists():
        return
    shutil.rmtree(path, ignore_errors=True)
    commit_version("casme2", root, recipe, path)
    (path / "done").touch()


def recode(source: Path, target: Path, codec: Codec) -> None:
    """A copy of the store ``source`` whose sample arrays are stored with ``codec``."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(source, target)
    session = open_repository(target).writable_session(MAIN)
    group = zarr.open_group(session.store, mode="r+")
    for name in group.attrs["arrays"]:
        old = group[name]
        values, dims = old[...], old.metadata.dimension_names
        fill, attributes = old.fill_value, dict(old.attrs)
        del group[name]
        new = group.create_array(
            name,
            shape=values.shape,
            dtype=values.dtype,
            chunks=old.chunks,
            compressors=(codec.zarr_codec(), CHECKSUM),
            dimension_names=dims,
            fill_value=fill,
            attributes=attributes,
        )
        new[...] = values
    session.commit(f"bench: sample arrays re-encoded with Blosc {codec.label} + bitshuffle")


def stored_bytes(array: zarr.Array) -> int:
    """The bytes of ``array``'s stored chunks (a chunk's CRC-32C included)."""
    return int(array.nbytes_stored())


def codec_rates(
    values: np.ndarray, codecs: tuple[Codec, ...], repeats: int, copies: int
) -> dict[str, tuple[float, float]]:
    """Decode and encode MiB/s (decoded bytes) of Blosc alone on one thread over the chunks of
    ``values`` (each ``copies`` times), per codec label; codecs alternated on every repeat."""
    chunks = [np.ascontiguousarray(chunk) for chunk in values] * copies
    blosc = {c.label: c.numcodecs() for c in codecs}
    encoded = {label: [b.encode(chunk) for chunk in chunks] for label, b in blosc.items()}
    decode = {c.label: [] for c in codecs}
    encode = {c.label: [] for c in codecs}
    for _ in range(repeats):
        for label, b in blosc.items():
            start = time.perf_counter()
            for chunk in encoded[label]:
                b.decode(chunk)
            decode[label].append(time.perf_counter() - start)
            start = time.perf_counter()
            for chunk in chunks:
                b.encode(chunk)
            encode[label].append(time.perf_counter() - start)
    mib = values.nbytes * copies / 2**20
    return {
        label: (mib / statistics.median(decode[label]), mib / statistics.median(encode[label]))
        for label in blosc
    }


def tiled(store, copies: int) -> StoreData:
    """The store's table ``copies`` times over (no arrays yet): a LOSO run at a dataset's size
    from a few written samples. A chunk is compressed on its own, so a repeated sample costs
    what it costs once; copy ``j`` of subject ``s`` is subject ``(j * S + s) % LOSO_SUBJECTS``,
    so that the run has CASME II's number of folds."""
    base = load_store_data(store, [])
    layout = store.attrs["arrays"]
    n = base.n_rows
    index = {s: i for i, s in enumerate(np.unique(base.subjects))}
    number = np.array([index[s] for s in base.subjects])
    subjects = np.concatenate([(j * len(index) + number) % LOSO_SUBJECTS for j in range(copies)])
    parents = np.concatenate(
        [np.where(base.parents >= 0, base.parents + j * n, -1) for j in range(copies)]
    )
    return dataclasses.replace(
        base,
        labels=np.tile(base.labels, copies),
        subjects=np.char.add("s", subjects.astype(str)),
        sample_ids=np.tile(base.sample_ids, copies),
        parents=parents,
        dims={name: tuple(layout[name]["dims"][1:]) for name in layout},
    )


def cut_seconds(data: StoreData, repeats: int) -> float:
    """Median seconds to cut every LOSO fold out of ``data`` as the trainer does."""
    augmented = data.n_augmented > 0
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        cut_every_fold(data, loso_folds(data), augmented=augmented, weighted=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_recipe(
    root: Path, work: Path, recipe: str, codecs: tuple[Codec, ...], repeats: int, mib: float
) -> dict:
    """Every figure of ``recipe``: {"figures": {codec label: {"arrays": {name: figures},
    "load_s": s}}, "cut_s": s, "n": rows read per load, ...}."""
    base = work / recipe / "written"
    write_store(root, base, recipe)
    stores = {}
    for codec in codecs:
        path = work / recipe / codec.label
        recode(base, path, codec)
        stores[codec.label] = open_store(path)
    first = stores[codecs[0].label]
    names = first.array_names
    values = {name: first.array(name) for name in names}
    for codec in codecs:  # the copies hold the same content (the bulk reader checks each CRC)
        for name in names:
            assert np.array_equal(stores[codec.label].array(name), values[name]), (codec, name)
    figures = {
        c.label: {
            "arrays": {
                n: {
                    "bytes": stored_bytes(stores[c.label].group[n]),
                    "mib": values[n].nbytes / 2**20,
                }
                for n in names
            }
        }
        for c in codecs
    }
    n = len(values[names[0]])
    originals = int((first.parents < 0).sum())
    copies = max(
        1,
        min(
            round(LOSO_CLIPS / originals),
            round(mib * 2**20 / sum(v.nbytes for v in values.values())),
        ),
    )
    for name in names:
        for label, (dec, enc) in codec_rates(values[name], codecs, repeats, copies).items():
            figures[label]["arrays"][name].update(codec_decode=dec, codec_encode=enc)
    rows = np.tile(np.arange(n), copies)  # each chunk fetched and decoded once per copy
    npy = {}
    for name in names:  # the reference: the same rows as .npy files, from the page cache
        npy[name] = work / recipe / f"{name}.npy"
        np.save(npy[name], np.concatenate([values[name]] * copies))
    bulk = {(c.label, name): [] for c in codecs for name in names}
    load = {c.label: [] for c in codecs}
    npy_s = []
    for _ in range(repeats):  # alternated, so that the VM's drift hits every codec alike
        start = time.perf_counter()
        for name in names:
            np.load(npy[name])
        npy_s.append(time.perf_counter() - start)
        for codec in codecs:
            store, start = stores[codec.label], time.perf_counter()
            for name in names:  # load_store_data's reads, at the tiled size
                began = time.perf_counter()
                store.array(name, rows=rows, cache=True)
                bulk[codec.label, name].append(time.perf_counter() - began)
            load[codec.label].append(time.perf_counter() - start)
    arrays = {name: np.concatenate([v] * copies) for name, v in values.items()}
    data = dataclasses.replace(tiled(first, copies), arrays=arrays)
    for codec in codecs:
        for name in names:
            entry = figures[codec.label]["arrays"][name]
            entry["mib_read"] = entry["mib"] * copies
            entry["bulk"] = entry["mib_read"] / statistics.median(bulk[codec.label, name])
        figures[codec.label]["load_s"] = statistics.median(load[codec.label])
    return {
        "n": n,
        "rows": n * copies,
        "folds": len(loso_folds(data)),
        "mib": sum(v.nbytes for v in data.arrays.values()) / 2**20,
        "cut_s": cut_seconds(data, 3),
        "npy_s": statistics.median(npy_s),
        "figures": figures,
    }


def print_recipe(recipe: str, result: dict, codecs: tuple[Codec, ...]) -> None:
    figures, ref = result["figures"], BASELINE.label
    print(
        f"\n{recipe}: {result['n']} stored samples, read as {result['rows']} rows "
        f"({result['mib']:.0f} MiB decoded), {result['folds']} LOSO folds"
    )
    print(
        f"  {'array':<10} {'codec':<8} {'KiB':>8} {'x bytes':>8} {'dec MiB/s':>10} "
        f"{'enc MiB/s':>10} {'bulk MiB/s':>11} {'x bulk':>7}"
    )
    for name, base in figures[ref]["arrays"].items():
        for codec in codecs:
            f = figures[codec.label]["arrays"][name]
            print(
                f"  {name:<10} {codec.label:<8} {f['bytes'] / 1024:>8.0f} "
                f"{f['bytes'] / base['bytes']:>8.3f} {f['codec_decode']:>10.0f} "
                f"{f['codec_encode']:>10.0f} {f['bulk']:>11.0f} "
                f"{f['bulk'] / base['bulk']:>7.2f}"
            )
    loso = {c.label: figures[c.label]["load_s"] + result["cut_s"] for c in codecs}
    print(
        f"  load every array: np.load of .npy files {result['npy_s']:.3f} s; "
        + ", ".join(
            f"{c.label} {figures[c.label]['load_s']:.3f} s "
            f"({result['npy_s'] / figures[c.label]['load_s']:.2f}x np.load)"
            for c in codecs
        )
    )
    print(
        f"  LOSO run data time = load every array + cut every fold ({result['cut_s']:.2f} s, "
        f"the same for every codec): "
        + ", ".join(
            f"{c.label} {loso[c.label]:.2f} s ({loso[ref] / loso[c.label]:.2f}x)" for c in codecs
        )
    )


def print_totals(results: dict, codecs: tuple[Codec, ...]) -> None:
    ref = BASELINE.label
    print(f"\nall recipes ({', '.join(results)}); x: speed-up or size against {ref}")
    print(
        f"  {'codec':<8} {'MiB':>8} {'x bytes':>8} {'dec MiB/s':>10} {'enc MiB/s':>10} "
        f"{'bulk MiB/s':>11} {'x np.load':>10} {'LOSO s':>8} {'x LOSO':>7}"
    )
    npy_s = sum(r["npy_s"] for r in results.values())
    totals = {}
    for codec in codecs:
        arrays = [a for r in results.values() for a in r["figures"][codec.label]["arrays"].values()]
        mib = sum(a["mib"] for a in arrays)
        totals[codec.label] = {  # decoded MiB over the summed seconds of each array
            "bytes": sum(a["bytes"] for a in arrays),
            "dec": mib / sum(a["mib"] / a["codec_decode"] for a in arrays),
            "enc": mib / sum(a["mib"] / a["codec_encode"] for a in arrays),
            "bulk": sum(a["mib_read"] for a in arrays)
            / sum(a["mib_read"] / a["bulk"] for a in arrays),
            "load": sum(r["figures"][codec.label]["load_s"] for r in results.values()),
            "loso": sum(r["figures"][codec.label]["load_s"] + r["cut_s"] for r in results.values()),
        }
    base = totals[ref]
    for codec in codecs:
        t = totals[codec.label]
        print(
            f"  {codec.label:<8} {t['bytes'] / 2**20:>8.1f} {t['bytes'] / base['bytes']:>8.3f} "
            f"{t['dec']:>10.0f} {t['enc']:>10.0f} {t['bulk']:>11.0f} {npy_s / t['load']:>10.2f} "
            f"{t['loso']:>8.2f} "
            f"{base['loso'] / t['loso']:>7.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--mib", type=float, default=48, help="at most this many decoded MiB per recipe's LOSO run"
    )
    parser.add_argument("--recipes", nargs="*", default=sorted(builtin_recipes()))
    parser.add_argument(
        "--codecs",
        nargs="*",
        default=[c.label for c in CANDIDATES],
        help="cname-clevel, e.g. zstd-1 lz4-9",
    )
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / ".work")
    args = parser.parse_args()
    codecs = tuple(
        Codec(label.rsplit("-", 1)[0], int(label.rsplit("-", 1)[1])) for label in args.codecs
    )
    codecs = tuple(dict.fromkeys((BASELINE, CURRENT, *codecs)))

    root = ensure_dataset(args.work, args.subjects, args.clips)
    work = args.work / "codec" / f"{args.subjects}x{args.clips}"
    print(
        f"the writer's codec for new versions: Blosc {CURRENT.label} + bitshuffle; ratios "
        f"against {BASELINE.label}; {os.cpu_count()} CPU(s); median of {args.repeats}, "
        f"codecs alternated"
    )
    results = {}
    for recipe in args.recipes:
        results[recipe] = measure_recipe(root, work, recipe, codecs, args.repeats, args.mib)
        print_recipe(recipe, results[recipe], codecs)
    print_totals(results, codecs)


if __name__ == "__main__":
    main()

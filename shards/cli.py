"""``gas-shards``: look into shard folders and check them.

    gas-shards inspect PATH...            summary: schema, shards, samples, sizes, per-dataset counts,
                                          clip modes, quality values (distribution, outliers)
    gas-shards ls PATH...                 one line per sample: key, dataset, subject, views, bytes
    gas-shards show PATH... KEY --out F   contact sheet PNG of one sample's images
    gas-shards verify PATH...             decode every sample, check manifest sizes and sha256

PATH is a shard folder (with or without ``manifest.json``), a ``manifest.json``, shard files, a
glob (quote it) or a brace pattern; local paths or fsspec URLs. ``verify`` exits 0 when
everything is good and 1 otherwise, naming each bad shard/sample and the reason; other commands
exit 2 on unusable arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import logging
import math
import os
import statistics
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from tqdm import tqdm

from shards import remote
from shards.contact_sheet import make_contact_sheet, save_png_atomic
from shards.manifest import MANIFEST_NAME, TMP_SUFFIX, Manifest, load_manifest
from shards.reader import ShardReadError, iter_shard_samples, read_sample, resolve_shard_urls
from shards.schema import SampleSchema, SchemaError, read_schema_tag, schema_for

__all__ = ["inspect_reports", "main", "verify_paths"]

logger = logging.getLogger(__name__)


@dataclass
class _Source:
    """Shards named by one PATH argument, with the manifest of their folder when there is one."""

    label: str
    urls: list[str]
    folder: remote.Folder | None = None
    manifest: Manifest | None = None
    whole_folder: bool = False


@dataclass
class _ShardScan:
    url: str
    size_bytes: int
    keys: list[str] = field(default_factory=list)
    datasets: Counter[str] = field(default_factory=Counter)
    schemas: Counter[str] = field(default_factory=Counter)
    modes: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    #: quality value name -> [(sample key, value)], from ``meta["extra"]["quality"]``
    quality: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    #: (sample key, value name, value, bound) of values outside the sample's own gate bounds
    out_of_bounds: list[tuple[str, str, float, str]] = field(default_factory=list)


#: A quality value is an outlier when it lies further than this many robust standard deviations
#: (1.4826 x median absolute deviation) from the median of its folder ...
OUTLIER_SIGMAS = 3.5
#: ... and the folder holds at least this many values (fewer say nothing about a distribution).
OUTLIER_MIN_SAMPLES = 8


def _basename(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def _collect_sources(paths: Sequence[str]) -> list[_Source]:
    """Shard URLs per PATH; folders bring their manifest, loose shards the manifest of their folder."""
    sources = []
    for path in paths:
        text = (path[: -len(MANIFEST_NAME)].rstrip("/") or ".") if path.endswith(MANIFEST_NAME) else path
        folder = remote.Folder(text)
        if not any(c in text for c in "*?[{") and folder.isdir():
            sources.append(_Source(path, resolve_shard_urls(text), folder, load_manifest(folder), whole_folder=True))
            continue
        urls = resolve_shard_urls(text)
        folders = {parent.location: parent for parent, _ in map(remote.split_location, urls)}
        parent = folders.popitem()[1] if len(folders) == 1 else None
        sources.append(_Source(path, urls, parent, load_manifest(parent) if parent is not None else None))
    return sources


def _schema_of(raw: dict[str, Any], where: str) -> SampleSchema:
    name, version = read_schema_tag(raw, where=where)
    return schema_for(name, version, where=where)


def _meta_of(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(raw.get("meta.json", b"{}"))
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def _n_views(raw: dict[str, Any], where: str) -> int | str:
    """Number of views of a raw sample: members of its schema's first required per-view image field."""
    try:
        schema = _schema_of(raw, where)
    except SchemaError:
        return "?"
    spec = next(f for f in schema.fields if f.repeated and f.required)
    matches = (schema.match_member(suffix) for suffix in raw if not suffix.startswith("__"))
    return sum(1 for match in matches if match is not None and match[0] is spec)


def _scan_shard(url: str) -> _ShardScan:
    folder, name = remote.split_location(url)
    scan = _ShardScan(url, folder.size(name))
    for raw in iter_shard_samples(url):
        key = raw["__key__"]
        scan.keys.append(key)
        meta = _meta_of(raw)
        scan.datasets[str(meta.get("dataset", "unknown"))] += 1
        if "mode" in meta:
            scan.modes[str(meta["mode"])] += 1
        extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
        gates = extra.get("gates")
        if isinstance(gates, dict) and "status" in gates:
            scan.statuses[str(gates["status"])] += 1
        quality = extra.get("quality")
        bounds = gates.get("bounds") if isinstance(gates, dict) and isinstance(gates.get("bounds"), dict) else {}
        if isinstance(quality, dict):
            for name, value in quality.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                    scan.quality.setdefault(str(name), []).append((key, float(value)))
                    bound = bounds.get(name)
                    if isinstance(bound, (list, tuple)) and len(bound) == 2:
                        low, high = bound
                        if low is not None and value < low:
                            scan.out_of_bounds.append((key, str(name), float(value), f"min {low}"))
                        elif high is not None and value > high:
                            scan.out_of_bounds.append((key, str(name), float(value), f"max {high}"))
        try:
            name, version = read_schema_tag(raw)
            scan.schemas[f"{name} v{version}"] += 1
        except SchemaError:
            scan.schemas["(no schema.json)"] += 1
    return scan


# ====================================================================== commands


def quality_summary(values: dict[str, list[tuple[str, float]]]) -> dict[str, dict[str, Any]]:
    """Distribution of each quality value over samples, and its outliers.

    Returns ``{name: {"n", "min", "p05", "median", "p95", "max", "outliers": [[key, value], ...]}}``;
    an outlier is further than :data:`OUTLIER_SIGMAS` robust standard deviations from the median
    (only named when there are at least :data:`OUTLIER_MIN_SAMPLES` values).
    """
    summary: dict[str, dict[str, Any]] = {}
    for name, items in sorted(values.items()):
        numbers = sorted(value for _, value in items)
        median = statistics.median(numbers)
        spread = 1.4826 * statistics.median(abs(v - median) for v in numbers)

        def quantile(q: float) -> float:
            return numbers[min(len(numbers) - 1, max(0, round(q * (len(numbers) - 1))))]

        enough = len(numbers) >= OUTLIER_MIN_SAMPLES
        outliers = [[key, value] for key, value in items
                    if enough and spread > 0 and abs(value - median) > OUTLIER_SIGMAS * spread]
        summary[name] = {"n": len(numbers), "min": numbers[0], "p05": quantile(0.05), "median": median,
                         "p95": quantile(0.95), "max": numbers[-1], "outliers": outliers}
    return summary


def _cmd_inspect(args: argparse.Namespace, out: TextIO) -> int:
    reports = []
    for source in _collect_sources(args.paths):
        scans = [] if args.no_samples else [
            _scan_shard(url) for url in tqdm(source.urls, desc="scanning shards", disable=None)]
        if source.manifest is not None and source.whole_folder:
            manifest = source.manifest
            report = {
                "source": source.label,
                "from": "manifest",
                "schema": f"{manifest.schema_name} v{manifest.schema_version}",
                "created": manifest.created,
                "updated": manifest.updated,
                "shards": [
                    {"file": e.file, "samples": e.count, "size_bytes": e.size_bytes, "sha256": e.sha256}
                    for e in manifest.shards
                ],
                "samples": manifest.total_samples,
                "size_bytes": manifest.total_bytes,
                "datasets": manifest.dataset_counts,
                "keys": sorted(manifest.keys),
                "extra": manifest.extra,
            }
        else:
            if args.no_samples:
                scans = [_scan_shard(url) for url in source.urls]
            schemas: Counter[str] = Counter()
            datasets: Counter[str] = Counter()
            for scan in scans:
                schemas.update(scan.schemas)
                datasets.update(scan.datasets)
            report = {
                "source": source.label,
                "from": "scan",
                "schema": ", ".join(sorted(schemas)) or "(empty)",
                "shards": [
                    {"file": _basename(s.url), "samples": len(s.keys), "size_bytes": s.size_bytes} for s in scans
                ],
                "samples": sum(len(s.keys) for s in scans),
                "size_bytes": sum(s.size_bytes for s in scans),
                "datasets": dict(sorted(datasets.items())),
                "keys": sorted(k for s in scans for k in s.keys),
            }
        if scans:
            modes: Counter[str] = Counter()
            statuses: Counter[str] = Counter()
            quality: dict[str, list[tuple[str, float]]] = {}
            out_of_bounds: list[tuple[str, str, float, str]] = []
            for scan in scans:
                modes.update(scan.modes)
                statuses.update(scan.statuses)
                out_of_bounds.extend(scan.out_of_bounds)
                for name, items in scan.quality.items():
                    quality.setdefault(name, []).extend(items)
            if out_of_bounds:
                report["outside_gates"] = [list(item) for item in out_of_bounds]
            if modes:
                report["modes"] = dict(sorted(modes.items()))
            if statuses:
                report["gate_status"] = dict(sorted(statuses.items()))
            if quality:
                report["quality"] = quality_summary(quality)
        reports.append(report)
    if args.json:
        out.write(json.dumps(reports, indent=1) + "\n")
        return 0
    for report in reports:
        out.write(f"source:   {report['source']} (from {report['from']})\n")
        out.write(f"schema:   {report['schema']}\n")
        out.write(
            f"shards:   {len(report['shards'])}   samples: {report['samples']}   size: {_human(report['size_bytes'])}\n"
        )
        out.write("datasets: " + (", ".join(f"{k}={v}" for k, v in report["datasets"].items()) or "-") + "\n")
        if report.get("modes"):
            out.write("modes:    " + ", ".join(f"{k}={v}" for k, v in report["modes"].items()) + "\n")
        if report.get("extra"):
            out.write("made by:  " + ", ".join(f"{k}={v}" for k, v in sorted(report["extra"].items())) + "\n")
        if report.get("gate_status"):
            out.write("gates:    " + ", ".join(f"{k}={v}" for k, v in report["gate_status"].items()) + "\n")
        if report.get("quality"):
            out.write(f"quality:  {'value':<24} {'n':>4} {'min':>9} {'p05':>9} {'median':>9} {'p95':>9} {'max':>9}\n")
            for name, row in report["quality"].items():
                out.write(f"          {name:<24} {row['n']:>4} " + " ".join(
                    f"{row[c]:>9.4g}" for c in ("min", "p05", "median", "p95", "max")) + "\n")
            for name, row in report["quality"].items():
                for key, value in row["outliers"]:
                    out.write(f"outlier:  {key}: {name} = {value:.4g} (median {row['median']:.4g})\n")
        for key, name, value, bound in report.get("outside_gates", []):
            out.write(f"gate:     {key}: {name} = {value:.4g} outside its gate ({bound}; packed by override)\n")
        for shard in report["shards"]:
            digest = f"  sha256 {shard['sha256'][:12]}" if "sha256" in shard else ""
            out.write(f"  {shard['file']:<28} {shard['samples']:>6} samples {_human(shard['size_bytes']):>10}{digest}\n")
        keys = report["keys"]
        shown = ", ".join(keys[: args.max_keys]) + (f", ... (+{len(keys) - args.max_keys})" if len(keys) > args.max_keys else "")
        out.write(f"keys:     {shown or '-'}\n")
    return 0


def _cmd_ls(args: argparse.Namespace, out: TextIO) -> int:
    out.write(f"{'key':<32} {'dataset':<14} {'subject':<16} {'views':>5} {'bytes':>10}  shard\n")
    for source in _collect_sources(args.paths):
        for url in source.urls:
            for raw in iter_shard_samples(url):
                key = raw["__key__"]
                meta = _meta_of(raw)
                size = sum(len(v) for k, v in raw.items() if not k.startswith("__"))
                views = _n_views(raw, f"{url} sample {key}")
                out.write(
                    f"{key:<32} {str(meta.get('dataset', '?')):<14} {str(meta.get('subject_id', '?')):<16} "
                    f"{views:>5} {size:>10}  {_basename(url)}\n"
                )
    return 0


def _cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    urls = [url for source in _collect_sources(args.paths) for url in source.urls]
    try:
        raw = read_sample(urls, args.key)
    except KeyError as exc:
        out.write(f"error: {exc.args[0]}\n")
        return 2
    where = f"{raw['__url__']} sample {args.key}"
    schema = _schema_of(raw, where)
    values = schema.decode_members(raw, where=where)
    sheet = make_contact_sheet(schema, values, title=f"{args.key}  ({schema.name} v{schema.version})", tile=args.tile)
    location = save_png_atomic(sheet, args.out)
    out.write(f"wrote {location} ({sheet.shape[1]}x{sheet.shape[0]} px)\n")
    return 0


def _sha256_of(folder: remote.Folder, name: str) -> str:
    digest = hashlib.sha256()
    with folder.open(name, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cmd_verify(args: argparse.Namespace, out: TextIO) -> int:
    problems: list[str] = []
    n_shards = n_samples = 0
    seen_keys: dict[str, str] = {}

    def bad(where: str, reason: str) -> None:
        problems.append(f"{where}: {reason}")
        out.write(f"BAD  {where}: {reason}\n")

    for source in _collect_sources(args.paths):
        manifest = source.manifest
        listed = {entry.file: entry for entry in manifest.shards} if manifest else {}
        if source.folder is not None and source.whole_folder:
            folder = source.folder
            present = set(folder.list())
            for name in sorted(present):
                if name.endswith(TMP_SUFFIX):
                    out.write(f"WARN {folder.join(name)}: temporary file of an unfinished write\n")
                elif name.endswith(".tar") and manifest is not None and name not in listed:
                    bad(folder.join(name), f"shard is not listed in {MANIFEST_NAME}")
            for name in sorted(set(listed) - present):
                bad(folder.join(name), f"listed in {MANIFEST_NAME} but missing")
        for url in tqdm(source.urls, desc="verifying shards", disable=None):
            folder, name = remote.split_location(url)
            entry = listed.get(name)
            if not folder.exists(name):
                if entry is None:
                    bad(url, "shard does not exist")
                continue
            n_shards += 1
            shard_ok = True
            if entry is not None:
                size = folder.size(name)
                if size != entry.size_bytes:
                    bad(url, f"size {size} bytes, manifest says {entry.size_bytes} (truncated or rewritten)")
                    shard_ok = False
                elif _sha256_of(folder, name) != entry.sha256:
                    bad(url, "sha256 differs from the manifest (corrupt or rewritten)")
                    shard_ok = False
            keys: list[str] = []
            try:
                for raw in iter_shard_samples(url):
                    key = raw["__key__"]
                    keys.append(key)
                    n_samples += 1
                    where = f"{url} sample {key}"
                    if key in seen_keys:
                        bad(where, f"duplicate key (also in {seen_keys[key]})")
                        shard_ok = False
                    seen_keys.setdefault(key, url)
                    try:
                        schema = _schema_of(raw, where)
                        if manifest is not None and (schema.name, schema.version) != (
                            manifest.schema_name,
                            manifest.schema_version,
                        ):
                            raise SchemaError(
                                f"{where}: schema {schema.name} v{schema.version}, manifest says "
                                f"{manifest.schema_name} v{manifest.schema_version}"
                            )
                        schema.decode_members(raw, where=where)
                    except SchemaError as exc:
                        bad(where, str(exc).removeprefix(f"{where}: "))
                        shard_ok = False
            except ShardReadError as exc:
                bad(url, str(exc).removeprefix(f"{url}: "))
                shard_ok = False
            if entry is not None and keys != list(entry.keys):
                bad(url, f"holds {len(keys)} samples, manifest lists {entry.count}; keys differ")
                shard_ok = False
            if shard_ok:
                out.write(f"OK   {url} ({len(keys)} samples)\n")
    summary = f"verified {n_shards} shards, {n_samples} samples: "
    out.write(summary + ("all good\n" if not problems else f"{len(problems)} problem(s)\n"))
    return 0 if not problems else 1


def inspect_reports(paths: Sequence[str], *, no_samples: bool = False) -> list[dict[str, Any]]:
    """What ``gas-shards inspect --json PATH...`` prints, as a list of dicts (one per PATH)."""
    out = io.StringIO()
    _cmd_inspect(argparse.Namespace(paths=list(paths), json=True, max_keys=10, no_samples=no_samples), out)
    return json.loads(out.getvalue())


def verify_paths(paths: Sequence[str]) -> tuple[bool, str]:
    """``gas-shards verify PATH...``: (True when everything is good, its report text)."""
    out = io.StringIO()
    status = _cmd_verify(argparse.Namespace(paths=list(paths)), out)
    return status == 0, out.getvalue()


# ====================================================================== entry point


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gas-shards", description="Inspect and verify GAS webdataset shards.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True)

    inspect = commands.add_parser("inspect", help="summary of shard folders or files")
    inspect.add_argument("paths", nargs="+", metavar="PATH")
    inspect.add_argument("--json", action="store_true", help="print the summary as JSON")
    inspect.add_argument("--max-keys", type=int, default=10, help="keys to print (default 10)")
    inspect.add_argument("--no-samples", action="store_true",
                         help="read only the manifest (no clip modes or quality values; fast on huge folders)")
    inspect.set_defaults(run=_cmd_inspect)

    ls = commands.add_parser("ls", help="one line per sample")
    ls.add_argument("paths", nargs="+", metavar="PATH")
    ls.set_defaults(run=_cmd_ls)

    show = commands.add_parser("show", help="contact sheet PNG of one sample")
    show.add_argument("paths", nargs="+", metavar="PATH")
    show.add_argument("key", metavar="KEY", help="sample key (see `gas-shards ls`)")
    show.add_argument("--out", required=True, metavar="FILE.png", help="where to write the PNG")
    show.add_argument("--tile", type=int, default=128, help="tile height in pixels (default 128)")
    show.set_defaults(run=_cmd_show)

    verify = commands.add_parser("verify", help="decode every sample, check manifest sizes and checksums")
    verify.add_argument("paths", nargs="+", metavar="PATH")
    verify.set_defaults(run=_cmd_verify)
    return parser


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush cannot raise on a closed pipe."""
    with contextlib.suppress(OSError, ValueError):  # not a real file (captured in tests): nothing to flush
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``gas-shards`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return int(args.run(args, sys.stdout))
    except BrokenPipeError:  # the reader went away (`gas-shards ls DIR | head`): stop quietly
        _silence_stdout()
        return 0
    except (ValueError, ShardReadError, OSError) as exc:
        sys.stdout.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())

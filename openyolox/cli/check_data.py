"""``openyolox check-data``: report what is wrong with a dataset, per file; optionally write a cleaned copy.

Exit status 0 when no errors were found (warnings allowed), 1 otherwise. The kinds of
problems and which are errors or warnings are listed in :mod:`openyolox.data.checks`.
"""
from __future__ import annotations

import argparse
import json
from typing import Dict, List

from openyolox.data.checks import (EDGE_TOLERANCE, KINDS, CheckReport, CleanStats, DatasetReport, Issue,
                                   check_dataset, check_output_dir, write_clean_copy)


def add_parser(sub) -> None:
    p = sub.add_parser(
        "check-data", help="check a dataset for bad images and labels (optionally write a cleaned copy)",
        description="Read a dataset in any supported layout and report, per file: missing, unreadable or "
                    "truncated images, image sizes that disagree with the annotation, boxes outside the image or "
                    "without area, unknown classes, duplicate image ids and boxes, images without labels and "
                    "labels without images; then statistics per split. Exit status 0 when there are no errors "
                    "(warnings allowed), 1 otherwise. The input is never modified.")
    p.add_argument("data", metavar="DATA", help="dataset folder (COCO, VOC, VOCdevkit), COCO .json, YOLO data.yaml "
                                                "or builtin")
    p.add_argument("--split", default="all", help="train, val, another split name the layout knows, or all "
                                                  "(default: every split the dataset has)")
    p.add_argument("--quick", action="store_true", help="do not decode the images, only read the end of "
                                                        "each file (no corrupt-image or size checks); the check "
                                                        "training runs")
    p.add_argument("--json", metavar="PATH", help="also write the full report as json")
    p.add_argument("--fix-out", metavar="DIR", help="write a cleaned copy as a COCO layout "
                   "(DIR/annotations/instances_<split>.json, DIR/<split>/ images) without unusable images and "
                   "boxes; boxes overhanging by at most --clip px are clipped, JPEGs that lost only their end "
                   "marker are written complete. DIR must be new or empty and "
                   "outside the input. Implies the full check; the exit status is still that of the input's check")
    p.add_argument("--clip", type=float, default=EDGE_TOLERANCE, metavar="PX",
                   help=f"boxes may overhang the image by this many px before they count as outside; with "
                        f"--fix-out they are clipped (default {EDGE_TOLERANCE:g})")
    p.add_argument("--workers", type=int, default=None, help="image decoding threads (default: min(8, CPUs))")
    p.add_argument("--max-lines", type=int, default=200, metavar="N",
                   help="print at most N errors and N warnings per split (0: all; --json has all)")


def run(args: argparse.Namespace) -> int:
    from openyolox.errors import ConfigError

    if args.clip < 0:
        raise ConfigError(f"--clip {args.clip}: must be >= 0 px")
    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: must be >= 1")
    if args.fix_out:
        check_output_dir(args.data, args.fix_out)
    full = not args.quick or bool(args.fix_out)
    report = check_dataset(args.data, args.split, full=full, workers=args.workers, progress=True,
                           tolerance=args.clip)
    print(format_report(report, args.max_lines))
    if args.json:
        from openyolox.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(report.to_dict(), indent=1))
        print(f"report written to {args.json}")
    if args.fix_out:
        stats = write_clean_copy(report, args.fix_out, tolerance=args.clip)
        print(format_fix_summary(report, stats, args.fix_out, args.clip))
    return 1 if report.errors else 0


# ----------------------------------------------------------------------------- formatting


def format_report(report: DatasetReport, max_lines: int = 200) -> str:
    """Per split: errors then warnings, one line each (``path: kind: detail``, sorted by
    file so a file's problems sit together), then statistics; then the overall verdict."""
    out = [f"checking {report.data} ({report.layout} layout), splits: {', '.join(report.splits) or 'none'}"]
    for name, split in report.splits.items():
        out.append("")
        out.append(f"== {name} ==")
        for title, issues in (("errors", split.errors), ("warnings", split.warnings)):
            if issues:
                out.append(f"{title} ({len(issues)}):")
                out += _issue_lines(issues, max_lines)
        out += _statistics_lines(split)
    out.append("")
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = "errors found (exit status 1)" if n_err else "no errors"
    out.append(f"{n_err} error(s), {n_warn} warning(s) in {len(report.splits)} split(s): {verdict}")
    return "\n".join(out)


def _issue_lines(issues: List[Issue], max_lines: int) -> List[str]:
    ordered = sorted(issues, key=lambda i: i.path)  # stable: a file's problems keep their order
    shown = ordered if max_lines <= 0 else ordered[:max_lines]
    lines = [f"  {i}" for i in shown]
    if len(ordered) > len(shown):
        lines.append(f"  ... and {len(ordered) - len(shown)} more (all of them: --max-lines 0, or --json)")
    return lines


def _statistics_lines(split: CheckReport) -> List[str]:
    kinds = split.kind_counts()
    lines = []
    if kinds:
        by_severity = {sev: ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()) if KINDS.get(k, "error") == sev)
                       for sev in ("error", "warning")}
        lines.append("problems: " + "; ".join(f"{sev}s: {text}" for sev, text in by_severity.items() if text))
    if not split.class_names:  # the split could not be read
        return lines
    per_class = ", ".join(f"{name} {n}" for name, n in zip(split.class_names, split.boxes_per_class))
    lines.append(f"images: {split.images}, boxes: {split.boxes} ({per_class})")
    hist = "  ".join(f"{k}: {v}" for k, v in split.size_histogram.items())
    lines.append(f"box size, sqrt(area) px: {hist}")
    coco = "  ".join(f"{k}: {v}" for k, v in split.coco_area.items())
    lines.append(f"COCO area ranges (box area): {coco}")
    if not split.full:
        lines.append("(quick check: images were not decoded)")
    return lines


def format_fix_summary(report: DatasetReport, stats: Dict[str, CleanStats], out_dir: str, clip: float) -> str:
    lines = [f"cleaned copy written to {out_dir} (COCO layout; load it with --data {out_dir}):"]
    for name, s in stats.items():
        dropped_images = sum(s.images_dropped.values())
        dropped_boxes = sum(s.boxes_dropped.values())
        line = f"  {name}: {s.images_kept} images, {s.boxes_kept} boxes"
        if dropped_images:
            line += f"; dropped {dropped_images} image(s) ({_counts(s.images_dropped)})"
        if dropped_boxes:
            line += f"; dropped {dropped_boxes} box(es) ({_counts(s.boxes_dropped)})"
        if s.boxes_clipped:
            line += f"; clipped {s.boxes_clipped} box(es) overhanging by <= {clip:g} px"
        if s.images_repaired:
            line += f"; repaired {s.images_repaired} JPEG(s) that had lost their end marker"
        lines.append(line)
    skipped = [n for n in report.splits if n not in report.loaded]
    if skipped:
        lines.append(f"  not written (could not be read): {', '.join(skipped)}")
    reader_kinds = ("bad-annotation", "unknown-class", "unknown-category", "unknown-image-id", "class-out-of-range",
                    "missing-annotation", "duplicate-image-id")
    if any(i.kind in reader_kinds and i.record is None for i in report.errors):
        lines.append("  annotation entries the readers could not use (reported above) are not in the copy")
    return "\n".join(lines)


def _counts(counts: Dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))

"""What a PLY or PCD file's header promises, checked against what the file holds before open3d reads
it: open3d fills a truncated binary PLY with zeros and reads garbage rows from a cut ascii one,
printing only a warning. A short file is an error naming it, with the counts.

PLY (paulbourke.net/dataformats/ply): ``ply``, ``format ascii|binary_little_endian|binary_big_endian
1.0``, ``element vertex N`` and its scalar ``property`` lines, other elements, ``end_header``.
PCD v0.7 (pointclouds.org): ``FIELDS``, ``SIZE``, ``TYPE``, ``COUNT``, ``WIDTH``, ``HEIGHT``,
``POINTS``, ``DATA ascii|binary|binary_compressed``.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CloudHeader", "check_ply", "check_pcd", "check_cloud_file"]

PLY_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
             "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}


@dataclass
class CloudHeader:
    """What the header declares: point count, field names, and whether the cloud is organized (a
    sensor's H×W grid, where NaN marks a pixel with no return)."""

    points: int
    fields: list[str] = field(default_factory=list)
    organized: bool = False


def _header_lines(path: Path, terminator: str, limit: int = 4096) -> tuple[list[str], int]:
    """The header's lines up to and including the one starting with ``terminator``, and its length
    in bytes; ValueError naming the file if there is none within ``limit`` lines."""
    lines, size = [], 0
    with path.open("rb") as handle:
        for _ in range(limit):
            raw = handle.readline()
            if not raw:
                break
            size += len(raw)
            line = raw.decode("ascii", errors="replace").strip()
            lines.append(line)
            if line.split(" ")[0] == terminator:
                return lines, size
    raise ValueError(f"{path}: no '{terminator}' line: not a complete {path.suffix[1:].upper()} header")


def _count_lines(path: Path, offset: int, wanted: int) -> tuple[int, int]:
    """(non-empty lines after ``offset``, the smallest token count among the first ``wanted``)."""
    count, fewest = 0, None
    with path.open("rb") as handle:
        handle.seek(offset)
        for raw in handle:
            tokens = raw.split()
            if not tokens:
                continue
            if count < wanted:
                fewest = len(tokens) if fewest is None else min(fewest, len(tokens))
            count += 1
    return count, fewest or 0


def check_ply(path: Path) -> CloudHeader:
    lines, header_bytes = _header_lines(path, "end_header")
    if not lines or lines[0] != "ply":
        raise ValueError(f"{path}: not a PLY file (its first line is {lines[0][:20] if lines else ''!r}, not 'ply')")
    fmt = next((line.split()[1] for line in lines if line.startswith("format ")), None)
    elements: list[list] = []  # [name, count, [property sizes], has_list]
    for line in lines:
        parts = line.split()
        if parts[:1] == ["element"] and len(parts) == 3:
            elements.append([parts[1], int(parts[2]), [], False, []])
        elif parts[:1] == ["property"] and elements:
            if parts[1] == "list":
                elements[-1][3] = True
            else:
                elements[-1][2].append(PLY_SIZES.get(parts[1], 0))
                elements[-1][4].append(parts[-1])
    vertex = next((element for element in elements if element[0] == "vertex"), None)
    if vertex is None:
        raise ValueError(f"{path}: the PLY header declares no 'element vertex'")
    _, count, sizes, has_list, names = vertex
    header = CloudHeader(points=count, fields=names)
    before = elements[: elements.index(vertex)]
    if any(element[3] for element in before) or has_list:
        return header  # list properties before the vertices: sizes vary, nothing cheap to check
    if fmt == "ascii":
        skip = sum(element[1] for element in before)
        rows, fewest = _count_lines(path, header_bytes, skip + count)
        if rows < skip + count:
            raise ValueError(f"{path}: truncated: the header declares {count} vertices, the file holds "
                             f"{max(rows - skip, 0)} rows")
        if fewest < len(sizes):
            raise ValueError(f"{path}: a vertex row has {fewest} values, the header declares {len(sizes)} "
                             f"properties per vertex (a cut or damaged file)")
    elif fmt in ("binary_little_endian", "binary_big_endian"):
        needed = sum(element[1] * sum(element[2]) for element in before) + count * sum(sizes)
        held = path.stat().st_size - header_bytes
        if held < needed:
            raise ValueError(f"{path}: truncated: the header declares {count} vertices ({needed} bytes of data), "
                             f"the file holds {held} bytes — about {max(held, 0) // max(sum(sizes), 1)} vertices")
    else:
        raise ValueError(f"{path}: unknown PLY format {fmt!r} (ascii, binary_little_endian, binary_big_endian)")
    return header


def check_pcd(path: Path) -> CloudHeader:
    lines, header_bytes = _header_lines(path, "DATA")
    entries = {line.split()[0]: line.split()[1:] for line in lines if line and not line.startswith("#")}
    fields = entries.get("FIELDS", [])
    try:
        points = int(entries.get("POINTS", [0])[0])
        width, height = int(entries.get("WIDTH", [points])[0]), int(entries.get("HEIGHT", [1])[0])
        sizes = [int(size) for size in entries.get("SIZE", [])]
        counts = [int(count) for count in entries.get("COUNT", ["1"] * len(fields))]
    except (ValueError, IndexError):
        raise ValueError(f"{path}: a PCD header field is not a number ({entries})") from None
    if not {"x", "y", "z"} <= set(fields):
        raise ValueError(f"{path}: the PCD has fields {fields}, no x, y and z: not a point cloud maekit can read")
    header = CloudHeader(points=points, fields=fields, organized=height > 1 and width * height == points)
    data = entries["DATA"][0] if entries.get("DATA") else ""
    if data == "ascii":
        rows, fewest = _count_lines(path, header_bytes, points)
        if rows < points:
            raise ValueError(f"{path}: truncated: the header declares {points} points, the file holds {rows} rows")
        if fewest < sum(counts):
            raise ValueError(f"{path}: a point row has {fewest} values, the header declares {sum(counts)}")
    elif data == "binary":
        needed, held = points * sum(s * c for s, c in zip(sizes, counts)), path.stat().st_size - header_bytes
        if held < needed:
            raise ValueError(f"{path}: truncated: the header declares {points} points ({needed} bytes), the file "
                             f"holds {held} bytes")
    elif data == "binary_compressed":
        with path.open("rb") as handle:
            handle.seek(header_bytes)
            sizes_raw = handle.read(8)
        if len(sizes_raw) < 8:
            raise ValueError(f"{path}: truncated: no compressed block after the header")
        compressed, _ = struct.unpack("<II", sizes_raw)
        if path.stat().st_size - header_bytes - 8 < compressed:
            raise ValueError(f"{path}: truncated: the compressed block declares {compressed} bytes, the file holds "
                             f"{path.stat().st_size - header_bytes - 8}")
    else:
        raise ValueError(f"{path}: unknown PCD DATA {data!r} (ascii, binary, binary_compressed)")
    return header


def check_cloud_file(path: Path) -> CloudHeader | None:
    """The header of a PLY or PCD file after checking the file holds what it declares; None for
    other formats (no header to hold them to)."""
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return check_ply(path)
    if suffix == ".pcd":
        return check_pcd(path)
    return None

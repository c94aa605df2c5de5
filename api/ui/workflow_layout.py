"""The workflow graph as the dashboard draws it: entries (nodes, and groups of alike nodes)
placed in columns by dependency depth, edges as paths between them. Positions are computed
here and drawn by the template as SVG (no script)."""

from __future__ import annotations

from dataclasses import dataclass

from jobq.workflows.views import Graph, GraphEntry

BOX_W, BOX_H = 190, 70  # an entry's box (px)
GAP_X, GAP_Y = 60, 18
PAD = 8
MOST_ENTRIES = 300  # entries drawn at most (the node table pages through the rest)


@dataclass(frozen=True, slots=True)
class Placed:
    entry: GraphEntry
    x: int
    y: int


@dataclass(frozen=True, slots=True)
class Path:
    d: str  # SVG path data
    policy: str


@dataclass(frozen=True, slots=True)
class Layout:
    boxes: list[Placed]
    paths: list[Path]
    width: int
    height: int
    cut: int  # entries not drawn


def layout(graph: Graph) -> Layout:
    shown = graph.entries[:MOST_ENTRIES]
    rows: dict[int, int] = {}
    placed: dict[str, Placed] = {}
    for entry in shown:
        row = rows.get(entry.depth, 0)
        rows[entry.depth] = row + 1
        placed[entry.id] = Placed(entry, PAD + entry.depth * (BOX_W + GAP_X),
                                  PAD + row * (BOX_H + GAP_Y))
    paths = []
    for edge in graph.edges:
        a, b = placed.get(edge.source), placed.get(edge.target)
        if a is None or b is None:
            continue
        x1, y1 = a.x + BOX_W, a.y + BOX_H // 2
        x2, y2 = b.x, b.y + BOX_H // 2
        mid = (x1 + x2) // 2
        paths.append(Path(f"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}", edge.policy))
    width = PAD * 2 + (max((e.depth for e in shown), default=0) + 1) * (BOX_W + GAP_X)
    height = PAD * 2 + max(rows.values(), default=1) * (BOX_H + GAP_Y)
    return Layout(list(placed.values()), paths, width, height,
                  len(graph.entries) - len(shown))

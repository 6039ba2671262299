"""Label hierarchies: a tree of classes read from YAML, and its leaf path-length metric.

The YAML format is a nested mapping, internal node -> children. Children are a mapping
(more internal nodes; a key with an empty value is a leaf), a list (whose items are leaf
names or one-key mappings of internal nodes), or a single leaf name. Leaves are class
names spelled exactly as in the dataset's class list; node names must be unique. A
top-level mapping with one key names the root; with several keys an implicit root
``"root"`` holds them::

    land_cover:
      vegetation:
        woody: [Forest, Shrubland]
        herbaceous: [Grassland, Croplands]
      water: [Water, Wetlands]

Packaged trees live in ``rsmm/data_manifests/hierarchy_<dataset>.yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import networkx as nx
import torch
import yaml
from torch import Tensor

from rsmm.errors import ConfigError, UnknownNameError
from rsmm.manifests import MANIFEST_PACKAGE
from rsmm.parsing import yaml_problem

#: Datasets that share another dataset's hierarchy file.
HIERARCHY_ALIASES = {"sen12ms": "dfc2020"}


def available_hierarchies() -> list[str]:
    """Names of the packaged hierarchies (``hierarchy_<name>.yaml``)."""
    names = [
        p.name[len("hierarchy_") : -len(".yaml")]
        for p in resources.files(MANIFEST_PACKAGE).iterdir()
        if p.name.startswith("hierarchy_") and p.name.endswith(".yaml")
    ]
    return sorted(names + list(HIERARCHY_ALIASES))


class LabelTree:
    """A rooted tree whose leaves are class names.

    Args:
        graph: directed tree, edges parent -> child; child order is the document order.
        root: the root node.
        classes: the dataset's class list (label id = index). When given, every class
            must be a leaf; the tree may hold more leaves (classes a variant drops), and
            :attr:`leaves` follows this order.
        source: where the tree came from, used in error messages.
        pad: pad the short branches with inert nodes (see :meth:`padded`): every leaf is
            then at the depth of the deepest one. rsmm's default keeps the tree as
            written; the thesis' tree metric (eq. 5.6) pads.
    """

    def __init__(
        self,
        graph: nx.DiGraph,
        root: str,
        classes: Sequence[str] | None = None,
        source: str = "<tree>",
        pad: bool = False,
    ) -> None:
        if not nx.is_arborescence(graph):
            raise ConfigError(f"{source}: the hierarchy is not a rooted tree")
        if pad:
            graph = _pad_graph(graph, root)
        self.graph = graph
        self.root = root
        self.source = source
        self._depth = nx.shortest_path_length(graph, root)
        self.classes = None if classes is None else list(classes)
        if self.classes is not None:
            self.check_classes(self.classes)

    def padded(self) -> LabelTree:
        """This tree with its short branches padded with inert nodes.

        The leaves of a parent shallower than the deepest leaves hang from a chain of
        inert single-child nodes below it (named ``"<parent>/pad<k>"``, shared by sibling
        leaves) until every leaf is at the maximum depth ``H``; path lengths between
        leaves then only depend on the depth of their lowest common ancestor,
        ``D[a, b] = 2 (H - depth(lca(a, b)))``, depth counted in the padded tree. rsmm's
        default metric is the plain path length of the tree as written.
        """
        return LabelTree(self.graph, self.root, classes=self.classes, source=self.source, pad=True)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        classes: Sequence[str] | None = None,
        source: str = "<dict>",
        pad: bool = False,
    ) -> LabelTree:
        """Build a tree from the nested mapping described in the module docstring."""
        if not isinstance(data, Mapping) or not data:
            raise ConfigError(f"{source}: a hierarchy must be a non-empty mapping")
        graph = nx.DiGraph()
        if len(data) == 1:
            ((root, children),) = data.items()
            root = _node_name(root, source)
        else:
            root, children = "root", data
        graph.add_node(root)
        _add_children(graph, root, children, source)
        return cls(graph, root, classes=classes, source=source, pad=pad)

    @classmethod
    def from_yaml(
        cls, path_or_name: str | Path, classes: Sequence[str] | None = None, pad: bool = False
    ) -> LabelTree:
        """Load a YAML file by path, or a packaged hierarchy by dataset name (``pad``: see
        :meth:`padded`)."""
        path = Path(path_or_name)
        if path.suffix in {".yaml", ".yml"} or path.exists():
            if not path.is_file():
                raise FileNotFoundError(f"hierarchy file not found: {path}")
            source = str(path)
            text = path.read_text()
        else:
            name = HIERARCHY_ALIASES.get(str(path_or_name), str(path_or_name))
            res = resources.files(MANIFEST_PACKAGE).joinpath(f"hierarchy_{name}.yaml")
            if not res.is_file():
                raise UnknownNameError(
                    f"no packaged hierarchy {path_or_name!r}; available: "
                    f"{', '.join(available_hierarchies())}"
                )
            source = f"{MANIFEST_PACKAGE}/hierarchy_{name}.yaml"
            text = res.read_text()
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"invalid hierarchy {yaml_problem(err, source)}") from err
        return cls.from_dict(data, classes=classes, source=source, pad=pad)

    @property
    def all_leaves(self) -> list[str]:
        """Every leaf, in document (depth-first) order."""
        return [n for n in nx.dfs_preorder_nodes(self.graph, self.root) if self.is_leaf(n)]

    @property
    def leaves(self) -> list[str]:
        """The class list when given, else :attr:`all_leaves`."""
        return list(self.classes) if self.classes is not None else self.all_leaves

    def is_leaf(self, node: str) -> bool:
        """Whether ``node`` has no children."""
        return self.graph.out_degree(node) == 0

    def check_classes(self, classes: Sequence[str]) -> None:
        """Raise ValueError unless every class is a distinct leaf of the tree."""
        missing = [c for c in classes if c not in self.graph or not self.is_leaf(c)]
        if missing:
            raise ConfigError(f"{self.source}: classes {missing} are not leaves of the hierarchy")
        if len(set(classes)) != len(classes):
            raise ConfigError(f"classes contain duplicates: {list(classes)}")

    def depth(self, node: str) -> int:
        """Number of edges from the root to ``node``."""
        return self._depth[node]

    def ancestors(self, node: str) -> list[str]:
        """The path root -> ``node`` (both included)."""
        return nx.shortest_path(self.graph, self.root, node)

    def group(self, node: str, level: int = 1) -> str:
        """The ancestor of ``node`` at depth ``level`` (``node`` itself if shallower)."""
        path = self.ancestors(node)
        return path[min(level, len(path) - 1)]

    def distance_matrix(self, classes: Sequence[str] | None = None) -> Tensor:
        """Path lengths (number of edges) between the leaves ``classes``.

        Args:
            classes: leaves in label order; defaults to :attr:`leaves`. A subset of the
                tree's leaves is fine (e.g. the 8-class DFC2020 variant).

        Returns:
            ``K x K`` float32 tensor ``D`` with ``D[i, j]`` the tree distance of classes i, j.
        """
        classes = self.leaves if classes is None else list(classes)
        self.check_classes(classes)
        undirected = self.graph.to_undirected(as_view=True)
        out = torch.zeros(len(classes), len(classes))
        for i, a in enumerate(classes):
            lengths = nx.single_source_shortest_path_length(undirected, a)
            out[i] = torch.tensor([float(lengths[b]) for b in classes])
        return out

    def __repr__(self) -> str:
        return (
            f"LabelTree(root={self.root!r}, leaves={len(self.all_leaves)}, source={self.source!r})"
        )


def _pad_graph(graph: nx.DiGraph, root: str) -> nx.DiGraph:
    """A copy of ``graph`` whose leaves all sit at the maximum depth: the leaves of a
    shallow parent hang from a chain of inert nodes below it (sibling leaves stay
    siblings; the order of children is kept)."""
    depth = nx.shortest_path_length(graph, root)
    height = max(depth[n] for n in graph if graph.out_degree(n) == 0)
    out = nx.DiGraph()
    out.add_node(root)
    for parent, child in nx.dfs_edges(graph, root):  # document order of the children
        missing = height - depth[child]
        if graph.out_degree(child) == 0 and missing > 0:
            chain = [f"{parent}/pad{k}" for k in range(1, missing + 1)]
            clash = [node for node in chain if node in graph]
            if clash:
                raise ConfigError(f"padding nodes {clash} clash with nodes of the tree")
            nx.add_path(out, [parent, *chain, child])
        else:
            out.add_edge(parent, child)
    return out


def _node_name(name: Any, source: str) -> str:
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"{source}: node names must be non-empty strings, got {name!r} "
            "(quote names YAML reads as numbers or booleans)"
        )
    return name


def _add_node(graph: nx.DiGraph, parent: str, name: Any, source: str) -> str:
    name = _node_name(name, source)
    if name in graph:
        raise ConfigError(f"{source}: node {name!r} appears more than once")
    graph.add_edge(parent, name)
    return name


def _add_children(graph: nx.DiGraph, parent: str, children: Any, source: str) -> None:
    if children is None:
        return
    if isinstance(children, Mapping):
        for name, grandchildren in children.items():
            _add_children(graph, _add_node(graph, parent, name, source), grandchildren, source)
    elif isinstance(children, list):
        for item in children:
            if isinstance(item, Mapping):
                _add_children(graph, parent, item, source)
            else:
                _add_node(graph, parent, item, source)
    else:
        _add_node(graph, parent, children, source)

"""What a taxonomy's gold gives the classifier, and how the walk reads it for each comment.

`Knowledge` holds the labelled comments of one taxonomy, their embeddings and the learned
model trained on them. For a batch of comments it gives a `Guidance`: each comment's
nearest labelled comments (never one with the comment's own text, whose label is the
answer) and, with a model, its
node probabilities. At each node of the walk the guidance says which children the learned
classifier decides alone (`route` cascade: those it is sure of; learned: all), which are
left to the LLM (its candidates), and which labelled comments the LLM sees as examples.
"""
from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np

from ..taxonomy import NodePath, Taxonomy
from . import ROUTES
from .embedder import Embedder
from .learned import MIN_EXAMPLES, SURE_PRECISION, LearnedModel, train
from .polarity import PolarityModel, single_polarities, train_polarity

NEAR_DUPLICATE = 0.95  # cosine similarity past which a labelled comment is taken for the same comment
SAME_WORDS = 0.6  # ... when they also share this share of their words


def normalized(text: str) -> str:
    """A text as gold matches it: case and spacing do not make another comment."""
    return " ".join(text.split()).casefold()


def text_key(text: str) -> str:
    """A label's id: one label per text (case and spacing aside), taxonomy and owner."""
    return hashlib.sha256(normalized(text).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Knowledge:
    """One taxonomy's gold, embedded, and the model trained on it (None: too little gold)."""

    taxonomy: Taxonomy
    texts: Sequence[str]
    stems: Sequence[frozenset[NodePath]]
    vectors: np.ndarray
    embedder: Embedder
    model: LearnedModel | None = None
    polarity: PolarityModel | None = None  # how single-topic comments feel (`polarity`), where labels say
    source: str = "gold"  # what its labels are, as answers name them: gold, or silver (`classifier.distill`)

    @cached_property
    def keys(self) -> list[str]:
        """Each labelled comment's id (`text_key`), in order."""
        return [text_key(text) for text in self.texts]

    @cached_property
    def _own(self) -> dict[str, int]:
        return {normalized(text): k for k, text in enumerate(self.texts)}

    @cached_property
    def about(self) -> dict[NodePath, np.ndarray]:
        """Per node, the labelled comments with a stem through it: an example's lookup scans
        these, never the whole gold."""
        found: dict[NodePath, list[int]] = {}
        for k, stems in enumerate(self.stems):
            for path in {stem[:depth] for stem in stems for depth in range(1, len(stem) + 1)}:
                found.setdefault(path, []).append(k)
        return {path: np.array(ks) for path, ks in found.items()}

    async def guide(self, texts: Sequence[str], *, examples: int, route: str) -> "Guidance":
        """What the gold says of each of `texts` (in a thread: embedding and lookup): a comment
        labelled already gets its label (a correction shows in the next answer); the others get
        examples and probabilities."""
        return await asyncio.to_thread(lambda: self.guidance(texts, self.embedder.embed(texts), examples=examples,
                                                             route=route))

    def guidance(self, texts: Sequence[str], vectors: np.ndarray, *, examples: int, route: str) -> "Guidance":
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; choose one of {ROUTES}")
        model = self.model if route != "llm" else None
        rows = model.probabilities(vectors) if model and len(vectors) else None
        similarity = vectors @ self.vectors.T if len(self.texts) else np.zeros((len(texts), 0), dtype=np.float32)
        labelled = labelled_as(texts, similarity, self._own, self.texts)
        twins = {row: self.stems[k] for row, k in labelled.items()}
        for row, text in enumerate(texts):  # a comment never retrieves itself
            if (k := self._own.get(normalized(text))) is not None:
                similarity[row, k] = -np.inf
        self.about  # the per-node index, built here (a worker thread under `guide`), never by the walk on the loop
        return Guidance(self, similarity, rows, model, examples, route, twins)


def labelled_as(texts: Sequence[str], similarity: np.ndarray, own: Mapping[str, int],
                labelled: Sequence[str]) -> dict[int, int]:
    """Per text labelled already, the labelled comment it is (by index): the same text (`own`:
    normalized text -> index), or one that differs from it only by a word or two (cosine
    similarity past `NEAR_DUPLICATE` and most words shared: an encoder tuned on the labels puts
    comments of one label close together, so closeness alone does not make a comment the same)."""
    found = {}
    for row, text in enumerate(texts):
        k = own.get(normalized(text))
        if k is None and similarity.shape[1] and similarity[row].max() >= NEAR_DUPLICATE:
            nearest_row = int(similarity[row].argmax())
            k = nearest_row if shared_words(text, labelled[nearest_row]) >= SAME_WORDS else None
        if k is not None:
            found[row] = k
    return found


def shared_words(first: str, second: str) -> float:
    """The share of the two texts' distinct words that both hold (Jaccard)."""
    a, b = set(re.findall(r"\w+", first.casefold())), set(re.findall(r"\w+", second.casefold()))
    return len(a & b) / len(a | b) if a | b else 1.0


def nearest(similarity: np.ndarray, among: np.ndarray | None, count: int) -> list[int]:
    """The `count` gold indices (of `among`, else of all) most similar, nearest first; never
    one at -inf (the comment itself). A partial sort: the cost grows with the candidates, not
    with their order."""
    candidates = np.arange(len(similarity)) if among is None else among
    scores = similarity[candidates]
    if count < len(candidates):
        top = np.argpartition(-scores, count)[:count]
        candidates, scores = candidates[top], scores[top]
    order = np.argsort(-scores, kind="stable")
    return [int(candidates[o]) for o in order if np.isfinite(scores[o])]


@dataclass(frozen=True)
class Guidance:
    """What the gold says of each comment of one batch (by its index in the batch)."""

    knowledge: Knowledge
    similarity: np.ndarray  # (comments, gold): cosine similarity; -inf for the comment's own label
    rows: list[dict[NodePath, float]] | None  # per comment: the learned node probabilities
    model: LearnedModel | None
    examples: int  # how many labelled comments the LLM sees at each node
    route: str
    # Comments labelled already (the same text, or one that differs by a character or two): their label.
    twins: dict[int, frozenset[NodePath]]

    def labelled(self, i: int, path: NodePath, children: Sequence[str]) -> list[tuple[str, list[str]]]:
        """Up to `examples` gold comments nearest to comment i, with their answer among
        `children` of `path`; below the root, those about `path` come first."""
        stems, texts, similarity = self.knowledge.stems, self.knowledge.texts, self.similarity[i]
        about = self.knowledge.about.get(path) if path else None
        picked = nearest(similarity, about, self.examples) if about is not None else []
        if len(picked) < self.examples:
            chosen = set(picked)
            rest = nearest(similarity, None, self.examples + len(picked))
            picked += [k for k in rest if k not in chosen][: self.examples - len(picked)]
        return [(texts[k], [c for c in children if any(s[: len(path) + 1] == path + (c,) for s in stems[k])])
                for k in picked]

    def split(self, i: int, path: NodePath, children: Sequence[str]) -> tuple[list[tuple[NodePath, float]], list[str]]:
        """At `path` for comment i: the children the learned classifier accepts alone, with
        their probabilities, and the candidates left to the LLM. The learned route decides
        every node; the cascade decides a node's children alone only when it is sure of each
        (and has a model for each), else the LLM chooses among those it is not sure are wrong."""
        if self.rows is None or self.model is None:
            return [], list(children)
        row, accepted, candidates, unsure = self.rows[i], [], [], False
        for name in children:
            child = path + (name,)
            p, levels = row.get(child), self.model.thresholds(child)
            if self.route == "learned":
                if p is not None and p >= levels.accept:
                    accepted.append((child, p))
                continue
            if p is not None and p >= levels.sure_yes:
                accepted.append((child, p))
            elif p is None or p > levels.sure_no:
                unsure = True
            if p is None or p > levels.sure_no:
                candidates.append(name)
        return ([], candidates) if unsure else (sorted(accepted, key=lambda pair: -pair[1]), [])


def build_knowledge(taxonomy: Taxonomy, texts: Sequence[str], stems: Sequence[frozenset[NodePath]],
                    embedder: Embedder, version: str, *, learn: bool = True,
                    precision: float = SURE_PRECISION) -> Knowledge:
    """Embed the gold and (with `learn`) train the learned model on it: what a taxonomy's gold
    gives the walk. Blocking (seconds for thousands of comments): call it in a thread."""
    return learned_from(taxonomy, texts, stems, embedder.embed(texts), embedder, version, learn=learn,
                        precision=precision)


def learned_from(taxonomy: Taxonomy, texts: Sequence[str], stems: Sequence[frozenset[NodePath]], vectors: np.ndarray,
                 embedder: Embedder, version: str, *, learn: bool = True, precision: float = SURE_PRECISION,
                 polarities: Sequence[dict[NodePath, str]] | None = None, source: str = "gold") -> Knowledge:
    """Knowledge from embedded gold, the model trained on it where asked and there are at least
    `MIN_EXAMPLES` labelled comments about some topic (else retrieval alone); with `polarities`
    (per comment, its stems' polarity where given), the polarity model too."""
    enough = learn and sum(bool(s) for s in stems) >= MIN_EXAMPLES
    model = train(vectors, stems, taxonomy, version, precision) if enough else None
    polarity = train_polarity(vectors, single_polarities(stems, polarities), precision) \
        if learn and polarities is not None else None
    return Knowledge(taxonomy, list(texts), list(stems), vectors, embedder, model, polarity, source)

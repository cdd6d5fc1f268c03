"""All prompt text. The fixed part (task, definitions, output rules) comes first and the
comment comes last, so every comment sent to the same node shares one byte-identical
prefix and the engine's prefix cache serves it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from .llm.base import Prompt
from .taxonomy import Node, NodePath, Taxonomy, format_path

NONE_OF_THESE = "none of these"
# Changes with any edit of this module, so a resumed batch run can tell that its earlier
# results were asked with other words (no version number to forget to bump).
PROMPTS_VERSION = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

_COMMENT_FOLLOWS = "The comment to analyse is the next message. Answer with JSON only."


def describe_node(node: Node, bullet: str = "- ", label: str | None = None) -> str:
    """One topic as the model sees it: its label (the name unless told), then whatever the
    file defines."""
    lines = [f"{bullet}{label or node.name}" + (f": {node.description}" if node.description else "")]
    if node.definition:
        lines.append(f"  Definition: {node.definition}")
    if node.keywords:
        lines.append(f"  Keywords: {', '.join(node.keywords)}")
    if node.scope:
        lines.append(f"  Scope: {node.scope}")
    if node.examples:
        lines.append(f"  Examples: {' | '.join(json.dumps(e, ensure_ascii=False) for e in node.examples)}")
    return "\n".join(lines)


def _scope(taxonomy: Taxonomy) -> str:
    """What the whole taxonomy covers, as its root's description and definition say (a
    definition such as "a sentence that gives no opinion belongs to no topic" tells the
    model when to answer none); empty when the file says nothing."""
    about = " ".join(part.rstrip(".") + "." for part in (taxonomy.root.description, taxonomy.root.definition) if part)
    return f"The taxonomy: {about}\n" if about else ""


def _sorting(taxonomy: Taxonomy, path: NodePath) -> str:
    """The opening lines of every prompt that sorts a comment among a node's topics."""
    return (f"You sort comments into the topics of the taxonomy \"{taxonomy.root.name}\".\n{_scope(taxonomy)}"
            f"Topic path: {format_path(taxonomy.root.name, path)}\n")


def keyword_examples(children: Sequence[Node], *, reasoning: bool) -> str:
    """Example answers made from the children's keywords: one per child that has some, one
    picking two topics at once, one picking none. They show a small model the answer format
    and that several topics may apply; they sit in the shared prefix, so the prefix cache
    serves them and they cost little per comment."""

    def example(words: Sequence[str], topics: list[str]) -> str:
        answer: dict[str, object] = {"topics": topics}
        if reasoning:
            answer["reason"] = f"It mentions {' and '.join(words)}." if words else "It is about none of the topics."
        about = " and ".join(f'"{w}"' for w in words) if words else "something none of the topics covers"
        return f"- A comment about {about} -> {json.dumps(answer)}"

    named = [c for c in children if c.keywords]
    lines = [example(c.keywords[:1], [c.name]) for c in named]
    if len(named) >= 2:
        lines.append(example([named[0].keywords[-1], named[1].keywords[-1]], [named[0].name, named[1].name]))
    lines.append(example([], [NONE_OF_THESE]))
    return "\n".join(lines)


LABELLED_CHARS = 300  # a labelled comment shown as an example is cut here


def labelled_context(labelled: Sequence[tuple[str, Sequence[str]]]) -> str:
    """Comments people labelled, each with the answer it got at this node, as worked examples
    for one comment (the nearest to it first); empty when there are none."""
    if not labelled:
        return ""
    lines = [f"- {json.dumps(text[:LABELLED_CHARS], ensure_ascii=False)} -> "
             f"{json.dumps({'topics': list(topics) or [NONE_OF_THESE]}, ensure_ascii=False)}" for text, topics in labelled]
    return "Comments like this one that people labelled, with the right answers:\n" + "\n".join(lines)


def select_prompt(
    taxonomy: Taxonomy, path: NodePath, comment: str, *, max_paths: int, reasoning: bool, few_shot: bool = False,
    only: Sequence[str] | None = None, labelled: Sequence[tuple[str, Sequence[str]]] = (),
) -> Prompt:
    """Ask which children of the node at `path` the comment is about (the `select` walk):
    all of them, or `only` these; `labelled` comments like it go before it as examples."""
    children = [c for c in taxonomy.node(path).children if only is None or c.name in only]
    topics = "\n".join(describe_node(c) for c in children)
    examples = keyword_examples(children, reasoning=reasoning) if few_shot else ""
    prompt = _select_instructions(taxonomy, path, topics, comment, max_paths=max_paths, reasoning=reasoning,
                                  examples=examples)
    return replace(prompt, context=labelled_context(labelled))


def flat_prompt(taxonomy: Taxonomy, comment: str, *, max_paths: int, reasoning: bool) -> Prompt:
    """Ask which complete stems of the whole tree the comment is about, each named by its
    path (the `flat` strategy, for small trees: one call per comment)."""
    topics = "\n".join(describe_node(taxonomy.node(stem), label=format_path(None, stem))
                       for stem in taxonomy.leaf_paths())
    return _select_instructions(taxonomy, (), topics, comment, max_paths=max_paths, reasoning=reasoning)


def _select_instructions(taxonomy: Taxonomy, path: NodePath, topics: str, comment: str, *, max_paths: int,
                         reasoning: bool, examples: str = "") -> Prompt:
    answer = '{"topics": [...]' + (', "reason": "..."}' if reasoning else "}")
    instructions = (
        f"{_sorting(taxonomy, path)}"
        f"Decide which of the topics below the comment talks about. Pick every topic that "
        f"applies, at most {max_paths}. If none of them applies, pick \"{NONE_OF_THESE}\".\n\n"
        f"Topics:\n{topics}\n\n"
        + (f"Examples:\n{examples}\n\n" if examples else "")
        + f"Answer format: {answer}" + (" with a one-sentence reason." if reasoning else ".") + "\n"
        f"{_COMMENT_FOLLOWS}"
    )
    return Prompt(instructions=instructions, comment=comment)


OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # one token each in common tokenizers


def score_prompt(taxonomy: Taxonomy, path: NodePath, comment: str, max_options: int) -> tuple[Prompt, list[str]]:
    """The node's children as lettered options and a last option for "none of these" (the
    `score` walk); the prompt and its letters, the none letter last. The model answers one
    letter, and the probability of every letter is read back. `ValueError` past
    `max_options` children (the engines return that many alternatives)."""
    children = taxonomy.node(path).children
    if len(children) > max_options:
        raise ValueError(f"node {format_path(taxonomy.root.name, path)!r} has {len(children)} children; the "
                         f"score strategy takes at most {max_options}: use --strategy select")
    letters = list(OPTION_LETTERS[: len(children) + 1])
    options = "\n".join(describe_node(child, bullet=f"{letter}. ") for letter, child in zip(letters, children))
    instructions = (
        f"{_sorting(taxonomy, path)}"
        f"Which of the topics below is the comment about? Answer with the letter of the topic it is most about, "
        f"or {letters[-1]} if it is about none of them.\n\n"
        f"Topics:\n{options}\n{letters[-1]}. {NONE_OF_THESE}\n\n"
        "The comment to analyse is the next message. Answer with one letter only."
    )
    return Prompt(instructions=instructions, comment=comment), letters


def relevance_prompt(taxonomy: Taxonomy, path: NodePath, comment: str) -> Prompt:
    """Ask whether the comment is about the one node at `path` (the `per_node` walk)."""
    instructions = (
        f"You check whether a comment talks about one topic of the taxonomy \"{taxonomy.root.name}\".\n{_scope(taxonomy)}"
        f"Topic path: {format_path(taxonomy.root.name, path)}\n"
        f"Topic:\n{describe_node(taxonomy.node(path))}\n\n"
        "Answer is_relevant true only if the comment is about this topic. confidence is 1 "
        "(a guess) to 5 (certain). reasoning is one short sentence. excerpt quotes the words "
        "of the comment that are about the topic, or is empty.\n"
        f"{_COMMENT_FOLLOWS}"
    )
    return Prompt(instructions=instructions, comment=comment)


def _stem_topic(taxonomy: Taxonomy, stem: NodePath, max_definitions: int) -> str:
    """A stem as the stem capabilities show it: its path, then its nodes (the most specific
    `max_definitions` of them, all when 0)."""
    nodes = [taxonomy.node(stem[: i + 1]) for i in range(len(stem))]
    if max_definitions > 0:
        nodes = nodes[-max_definitions:]
    return f"Topic: {format_path(None, stem)}\n" + "\n".join(describe_node(n) for n in nodes)


def stem_prompt(task: str, taxonomy: Taxonomy, stem: NodePath, comment: str, *, max_definitions: int) -> Prompt:
    """A stem capability's prompt: the task, then the stem, then the comment."""
    instructions = (
        f"{task}\n\n{_stem_topic(taxonomy, stem, max_definitions)}\n\n"
        "Consider only what the comment says about this topic.\n"
        f"{_COMMENT_FOLLOWS}"
    )
    return Prompt(instructions=instructions, comment=comment)


def stems_prompt(task: str, taxonomy: Taxonomy, stems: Sequence[NodePath], comment: str, *,
                 max_definitions: int) -> Prompt:
    """One prompt about several stems of a comment at once: the task, each stem, the comment."""
    topics = "\n\n".join(_stem_topic(taxonomy, stem, max_definitions) for stem in stems)
    return Prompt(instructions=f"{task}\n\n{topics}\n\n{_COMMENT_FOLLOWS}", comment=comment)


def text_prompt(task: str, comment: str) -> Prompt:
    """A whole-comment capability's prompt: the task, then the comment."""
    return Prompt(instructions=f"{task}\n{_COMMENT_FOLLOWS}", comment=comment)


def _one_word(words: Sequence[str], about: str) -> str:
    return f"Which one word describes {about} best: {', '.join(words)}? Answer with that word only."


def sorting_prompt(words: Sequence[str], comment: str, hint: str = "") -> Prompt:
    """A whole-comment capability's decision: which of `words` describes the comment best
    (asked after the comment: a small model follows it far better there)."""
    return Prompt(" ".join(filter(None, ("You sort feedback comments by what they are.", hint))), comment,
                  _one_word(words, "this comment"))


def stem_sorting_prompt(words: Sequence[str], taxonomy: Taxonomy, stem: NodePath, comment: str, *,
                        max_definitions: int, hint: str = "") -> Prompt:
    """A stem capability's decision: which of `words` describes what the comment says about the stem."""
    opening = " ".join(filter(None, ("You sort what feedback comments say about one topic.", hint)))
    return Prompt(f"{opening}\n\n{_stem_topic(taxonomy, stem, max_definitions)}", comment,
                  _one_word(words, "what this comment says about the topic"))


# What each capability looks for, and what it must not take for one, in its details prompt.
RECOMMENDATION_KIND = (
    "A recommendation is a change the writer asks for or proposes: something to add, increase, "
    "reduce, remove, start, stop, change, improve or keep, said as a request, a suggestion or a "
    "wish (\"please add\", \"it would be better if\", \"you should\", \"I wish there were\"). "
    "Not a recommendation: a statement of what happened or how things are, praise or a "
    "complaint that proposes no change, a question, or a plan of the writer's own (\"we will "
    "go back\")."
)

ALERT_KIND = (
    "An alert is a report of harm, risk or misconduct that someone in charge must act on: "
    "discrimination, sexual harassment, violence or threats, a danger to someone's health or "
    "safety, unethical or illegal conduct, bullying, retaliation, substance abuse, a mental "
    "health crisis, a data breach or fraud. Not an alert: a complaint, a disappointment, a bad "
    "product or service, bad food, a rude or slow waiter, a high price, a dull session, a "
    "request or a suggestion."
)

TREND_KIND = (
    "A trend is a change over time that the writer reports: something getting better or "
    "worse, more or less, or staying the same across time (\"lately\", \"since the change\", "
    "\"again\", \"still\", \"used to\", \"not any longer\"). Not a trend: one experience or "
    "an opinion of how things are, with nothing compared over time."
)

RECOMMENDATIONS_TASK = (
    f"You find recommendations in feedback comments. {RECOMMENDATION_KIND} This comment holds "
    "at least one. For each give the excerpt (the writer's words), a short reasoning, the "
    "recommendation paraphrased as an instruction, and its qualifier."
)

ALERTS_TASK = (
    f"You screen feedback comments for alerts. {ALERT_KIND} This comment holds at least one. "
    "For each give the excerpt, a short reasoning, the alert_type and the severity."
)

TRENDS_TASK = (
    f"You find trends in feedback comments. {TREND_KIND} This comment reports at least one. "
    "For each give the excerpt, a short reasoning, the subject that changes, its direction, its "
    "valence and your confidence from 1 to 5."
)

STEM_POLARITY_TASK = (
    "You judge how a feedback comment feels about one topic: Positive, Negative, Neutral "
    "or Mixed. Give your confidence from 1 to 5, a short reasoning and the excerpt of the "
    "comment that shows it."
)

STEMS_POLARITY_TASK = (
    "You judge how a feedback comment feels about each of the topics below: Positive, "
    "Negative, Neutral or Mixed. Judge each topic only by what the comment says about it. "
    "Answer with one polarity per topic."
)

STEM_RECOMMENDATIONS_TASK = (
    f"You find what a feedback comment recommends about one topic. {RECOMMENDATION_KIND} The "
    "comment recommends at least one change about this topic: to start, stop, do more, do "
    "less, continue or change something. For each give its type, the excerpt, a short "
    "reasoning and the recommendation paraphrased as an instruction."
)

STEM_TRENDS_TASK = (
    f"You find trends a feedback comment reports about one topic. {TREND_KIND} The comment "
    "reports at least one about this topic. For each give the excerpt, a short reasoning, the "
    "subject that changes, its direction, its valence and your confidence from 1 to 5."
)

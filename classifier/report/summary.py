"""Counts over a set of results: the numbers behind the report and `"summary": true`.

Each count is of comments, not of mentions: a comment that names a topic twice counts once.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Mapping

from ..taxonomy import PATH_SEPARATOR, Taxonomy, parse_stem

POLARITIES = ("Positive", "Negative", "Neutral", "Mixed")
SEVERITIES = ("critical", "high", "moderate", "low")  # most severe first


@dataclass
class Summary:
    texts: int = 0
    classified: int = 0  # texts with at least one topic
    skipped: int = 0  # empty texts
    errors: int = 0  # texts whose result carries an error
    truncated: int = 0
    alerted: int = 0  # texts with at least one alert
    paths: dict[str, int] = field(default_factory=dict)  # every accepted path, prefix included, most frequent first
    stems: dict[str, int] = field(default_factory=dict)  # complete stems (paths to a leaf, no prefix)
    polarity: dict[str, dict[str, int]] = field(default_factory=dict)  # stem -> polarity -> comments
    alerts_by_severity: dict[str, int] = field(default_factory=dict)  # most severe first
    alerts_by_type: dict[str, int] = field(default_factory=dict)
    recommendations_by_qualifier: dict[str, int] = field(default_factory=dict)
    stem_recommendations: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # stem -> type -> paraphrases
    trends_by_direction: dict[str, int] = field(default_factory=dict)
    trends_by_subject: dict[str, int] = field(default_factory=dict)
    confidence: dict[str, int] = field(default_factory=dict)  # accepted nodes by confidence 1-5

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ranked(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def stem_of(path: str) -> str:
    """`Prefix>A>B` -> `A>B`: a wire path without its root (or project) name."""
    return path.split(PATH_SEPARATOR, 1)[1] if PATH_SEPARATOR in path else ""


def summarize(results: Iterable[Mapping[str, Any]], taxonomy: Taxonomy) -> Summary:
    """The counts over `results` (result objects as /classify answers them)."""
    summary = Summary()
    paths, stems, severities, alert_types, qualifiers = Counter(), Counter(), Counter(), Counter(), Counter()
    directions, subjects, confidence = Counter(), Counter(), Counter()
    polarity: dict[str, Counter[str]] = defaultdict(Counter)
    stem_recommendations: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for result in results:
        summary.texts += 1
        summary.skipped += "skipped" in result
        summary.errors += "error" in result
        summary.truncated += bool(result.get("truncated"))
        classification = result.get("classification_result") or {}
        found = set(classification.get("classification_paths", ()))
        summary.classified += bool(found)
        paths.update(found)
        stems.update(s for s in map(stem_of, found) if s and taxonomy.is_complete_stem(parse_stem(s)))
        confidence.update(str(node["confidence"]) for node in classification.get("node_results", {}).values()
                          if "confidence" in node)
        for stem, answer in (result.get("stem_polarity") or {}).items():
            polarity[stem][answer["polarity"]] += 1
        alerts = (result.get("alerts") or {}).get("alerts", [])
        summary.alerted += bool(alerts)
        severities.update({a["severity"] for a in alerts})
        alert_types.update({a["alert_type"] for a in alerts})
        qualifiers.update({r["qualifier"] for r in (result.get("recommendations") or {}).get("recommendations", [])})
        for stem, answer in (result.get("stem_recommendations") or {}).items():
            for item in answer.get("recommendations", []):
                stem_recommendations[stem][item["recommendation_type"]].append(item["paraphrased_recommendation"])
        trends = list((result.get("trends") or {}).get("trends", []))
        trends += [t for listed in (result.get("stem_trends") or {}).values() for t in listed]
        directions.update({t["direction"] for t in trends})
        subjects.update({t["subject"].strip().lower() for t in trends if t["subject"].strip()})
    summary.paths, summary.stems = _ranked(paths), _ranked(stems)
    summary.polarity = {stem: {p: polarity[stem][p] for p in POLARITIES if polarity[stem][p]}
                        for stem in sorted(polarity, key=lambda s: -sum(polarity[s].values()))}
    summary.alerts_by_severity = {s: severities[s] for s in SEVERITIES if severities[s]}
    summary.alerts_by_type = _ranked(alert_types)
    summary.recommendations_by_qualifier = _ranked(qualifiers)
    summary.stem_recommendations = {stem: dict(types) for stem, types in stem_recommendations.items()}
    summary.trends_by_direction, summary.trends_by_subject = _ranked(directions), _ranked(subjects)
    summary.confidence = {str(c): confidence[str(c)] for c in range(1, 6) if confidence[str(c)]}
    return summary

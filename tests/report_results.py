"""A hand-made set of results (wire shape) over the `training` tree, shared by the report tests."""
from __future__ import annotations

from typing import Any

P = "Training feedback"


def classified(*stems: str, confidence: int | None = None) -> dict[str, Any]:
    paths: list[str] = []
    for stem in stems:
        parts = stem.split(">")
        for k in range(1, len(parts) + 1):
            path = ">".join([P, *parts[:k]])
            if path not in paths:
                paths.append(path)
    node = {"is_relevant": True, "reasoning": ""} | ({"confidence": confidence} if confidence else {})
    return {"classification_paths": paths, "node_results": {p.rsplit(">", 1)[1]: dict(node) for p in paths}}


def polarity(value: str, excerpt: str = "") -> dict[str, Any]:
    return {"polarity": value, "confidence": 4, "reasoning": "", "excerpt": excerpt}


def alert(kind: str, severity: str, excerpt: str) -> dict[str, Any]:
    return {"excerpt": excerpt, "reasoning": "", "alert_type": kind, "severity": severity}


RESULTS: list[dict[str, Any]] = [
    {"text": "The trainer rushed <b>everything</b>", "classification_result": classified("Delivery>Pace", confidence=5),
     "stem_polarity": {"Delivery>Pace": polarity("Negative", "rushed")},
     "alerts": {"has_alerts": False, "alerts": []},
     "recommendations": {"has_recommendations": True, "recommendations": [
         {"excerpt": "rushed", "reasoning": "", "paraphrased_recommendation": "Slow down", "qualifier": "reduce_or_remove"}]},
     "stem_recommendations": {"Delivery>Pace": {"has_recommendations": True, "recommendations": [
         {"recommendation_type": "do_less", "excerpt": "rushed", "reasoning": "", "paraphrased_recommendation": "Less rushing"}]}}},
    {"text": "Too fast, and the lunch was cold", "classification_result": classified("Delivery>Pace", "Logistics>Catering", confidence=4),
     "stem_polarity": {"Delivery>Pace": polarity("Negative", "Too fast"), "Logistics>Catering": polarity("Negative", "lunch was cold")},
     "alerts": {"has_alerts": True, "alerts": [alert("safety_concern", "low", "cold")]},
     "trends": {"has_trends": True, "trends": [{"excerpt": "", "reasoning": "", "subject": "Lunch", "direction": "deteriorating",
                                                "valence": "negative", "confidence": 3}]}},
    {"text": "Good pace, the fire exit was locked", "classification_result": classified("Delivery>Pace", "Logistics>Venue", confidence=3),
     "stem_polarity": {"Delivery>Pace": polarity("Positive", "Good pace"), "Logistics>Venue": polarity("Negative", "fire exit")},
     "alerts": {"has_alerts": True, "alerts": [alert("safety_concern", "critical", "fire exit was locked"),
                                               alert("other_serious_concern", "high", "locked")]}},
    {"text": "Great content", "classification_result": classified("Content", confidence=5),
     "stem_polarity": {"Content": polarity("Positive", "Great")},
     "trends": {"has_trends": True, "trends": [{"excerpt": "", "reasoning": "", "subject": "lunch ", "direction": "improving",
                                                "valence": "positive", "confidence": 2}]}},
    {"text": "", "classification_result": {"classification_paths": [], "node_results": {}}, "stem_polarity": {},
     "skipped": "empty text"},
    {"text": "???", "classification_result": {"classification_paths": [], "node_results": {}},
     "error": "classification at the root: model output is not JSON", "truncated": True},
]

"""Pydantic models of every capability's output: the LLM's JSON schema and the wire
shape at once, with the prototype's field names and enum values.

Every string and list is bounded, so every answer has a longest form, and `max_tokens`
is derived from it (`llm.schema.answer_token_bound`): a model that rambles reaches the
bound of its field, never the end of its token budget with the JSON still open.
"""
from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, Field

Confidence = Literal[1, 2, 3, 4, 5]
Excerpt = Field(max_length=200)
Reasoning = Field(max_length=200)
Paraphrase = Field(max_length=200)
MAX_ITEMS = 3


class Recommendation(BaseModel):
    excerpt: str = Excerpt
    reasoning: str = Reasoning
    paraphrased_recommendation: str = Paraphrase
    qualifier: Literal[
        "add_or_increase",
        "reduce_or_remove",
        "introduce_or_start",
        "eliminate_or_stop",
        "modify_or_improve",
        "maintain_or_continue",
        "unspecified_or_general",
    ]


class Recommendations(BaseModel):
    has_recommendations: bool
    recommendations: list[Recommendation] = Field(max_length=MAX_ITEMS)


class Alert(BaseModel):
    excerpt: str = Excerpt
    reasoning: str = Reasoning
    alert_type: Literal[
        "discrimination",
        "sexual_harassment",
        "workplace_violence",
        "safety_concern",
        "ethical_violation",
        "hostile_environment",
        "retaliation",
        "bullying",
        "substance_abuse",
        "mental_health_crisis",
        "data_breach",
        "fraud",
        "other_serious_concern",
    ]
    severity: Literal["low", "moderate", "high", "critical"]


class Alerts(BaseModel):
    has_alerts: bool
    alerts: list[Alert] = Field(max_length=MAX_ITEMS)


class Trend(BaseModel):
    excerpt: str = Excerpt
    reasoning: str = Reasoning
    subject: str = Field(max_length=100)
    direction: Literal[
        "increasing",
        "decreasing",
        "improving",
        "deteriorating",
        "stable_positive",
        "stable_negative",
        "fluctuating",
    ]
    valence: Literal["positive", "negative", "neutral", "mixed"]
    confidence: Confidence


class Trends(BaseModel):
    has_trends: bool
    trends: list[Trend] = Field(max_length=MAX_ITEMS)


Polarity = Literal["Positive", "Negative", "Neutral", "Mixed"]
POLARITIES: tuple[str, ...] = get_args(Polarity)


class StemPolarity(BaseModel):
    polarity: Polarity
    confidence: Confidence
    reasoning: str = Reasoning
    excerpt: str = Excerpt


class StemRecommendation(BaseModel):
    recommendation_type: Literal["start", "stop", "do_more", "do_less", "continue", "change"]
    excerpt: str = Excerpt
    reasoning: str = Reasoning
    paraphrased_recommendation: str = Paraphrase


class StemRecommendations(BaseModel):
    has_recommendations: bool
    recommendations: list[StemRecommendation] = Field(max_length=MAX_ITEMS)


class NodeRelevance(BaseModel):
    """The `per_node` walk's answer about one (comment, child node) pair."""

    is_relevant: bool
    confidence: Confidence
    reasoning: str = Reasoning
    excerpt: str = Excerpt

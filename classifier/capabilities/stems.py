"""Capabilities asked once per complete stem: polarity, recommendations and trends per topic."""
from __future__ import annotations

from .. import prompts
from .base import StemCapability
from ..outputs import StemPolarity, StemRecommendations, Trends

stem_polarity = StemCapability("stem_polarity", "stem_polarity", prompts.STEM_POLARITY_TASK, StemPolarity)
stem_recommendations = StemCapability(
    "stem_recommendations", "stem_recommendations", prompts.STEM_RECOMMENDATIONS_TASK, StemRecommendations
)
# On the wire a stem's trends are the bare list (the prototype's shape).
stem_trend = StemCapability(
    "stem_trend", "stem_trends", prompts.STEM_TRENDS_TASK, Trends, wire=lambda data: data["trends"]
)
